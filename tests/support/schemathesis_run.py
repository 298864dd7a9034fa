"""Run schemathesis over an OpenAPI document and say, one line each, what it found."""

from __future__ import annotations

from typing import Any

import schemathesis
from schemathesis.engine import events


def schemathesis_failures(document: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """Every failed check (with the request that shows it) and every error, sorted, once."""
    settings = schemathesis.config.SchemathesisConfig.from_dict(config)
    schema = schemathesis.openapi.from_dict(document, config=settings)
    failures = []
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            for checks in event.recorder.checks.values():
                for check in checks:
                    if check.failure_info is not None:
                        failure = check.failure_info.failure
                        failures.append(
                            f"{failure.code} {check.name} {failure.operation}: {failure.title}\n"
                            f"{check.failure_info.code_sample}"
                        )
        elif isinstance(event, events.NonFatalError | events.FatalError):
            failures.append(f"error: {event!r}")
    return sorted(set(failures))
