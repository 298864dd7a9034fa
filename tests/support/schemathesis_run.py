"""Run schemathesis over an OpenAPI document and say, one line each, what it found.

It runs in a child process: on CPython 3.11 the AST converter's recursion counter is shared by
the interpreter's threads (gh-106905), so schemathesis on a worker thread beside a served app
now and then failed with "AST constructor recursion depth mismatch", a fault of neither.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHILD_SECONDS = 300


def schemathesis_failures(document: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """Every failed check (with the request that shows it) and every error, sorted, once."""
    child = subprocess.run(
        [sys.executable, "-m", "tests.support.schemathesis_run"],
        input=json.dumps({"document": document, "config": config}),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=CHILD_SECONDS,
        check=False,
    )
    if child.returncode != 0:
        return [f"error: schemathesis exited with {child.returncode}:\n{child.stderr}"]
    failures: list[str] = json.loads(child.stdout)
    return failures


def _run(document: dict[str, Any], config: dict[str, Any]) -> list[str]:
    import schemathesis
    from schemathesis.engine import events

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


if __name__ == "__main__":
    given = json.load(sys.stdin)
    json.dump(_run(given["document"], given["config"]), sys.stdout)
