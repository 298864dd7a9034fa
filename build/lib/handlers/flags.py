"""Handler flags the plumbing reads: which handlers only read the database."""

from __future__ import annotations

from typing import Any

# The flag's name and the value that marks a handler as one that changes nothing: its unit of
# work runs in read transactions (no SQLite writer, no BEGIN IMMEDIATE); a write in it is a
# defect that fails the tests.
DB_FLAG = "db"
READS_ONLY: dict[str, Any] = {DB_FLAG: "read"}
