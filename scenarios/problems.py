"""Input a scenario refuses: one error type for orders, products, customer references alike."""

from __future__ import annotations

from enum import StrEnum


class ProblemKind(StrEnum):
    """What went wrong, for the transport to choose its status code."""

    MALFORMED = "malformed"  # the request's shape or types (HTTP 400)
    INVALID = "invalid"  # well-formed but breaks a rule (422)
    NOT_FOUND = "not_found"  # 404
    CONFLICT = "conflict"  # 409


class InputProblem(Exception):
    """A request a scenario refuses; nothing has been written when it is raised."""

    def __init__(
        self, kind: ProblemKind, code: str, message: str, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.message = message
        self.field = field


def invalid(code: str, message: str, field: str) -> InputProblem:
    """Well-formed input that breaks a rule, naming the field."""
    return InputProblem(ProblemKind.INVALID, code, message, field)


def is_ascii_number(text: str) -> bool:
    """Only the digits 0-9: ``str.isdigit()`` also says yes to "¹" and "²", which ``int()``
    refuses (a 500 or "something went wrong" instead of a clear answer)."""
    return text.isascii() and text.isdigit()
