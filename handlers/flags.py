"""Handler flags the plumbing reads: which handlers only read the database, or read first."""

from __future__ import annotations

from typing import Any

# The flag's name and the value that marks a handler as one that changes nothing: its unit of
# work runs in read transactions (no SQLite writer, no BEGIN IMMEDIATE); a write in it is a
# defect that fails the tests.
DB_FLAG = "db"
READS_ONLY: dict[str, Any] = {DB_FLAG: "read"}
# A handler that reads what it needs first and then writes once: its reads take no writer,
# and its first write begins the write transaction (so holds SQLite's writer only from
# there). Its writes must not rest on those reads being current (a conditional UPDATE that
# checks them, for instance): another writer may have changed the rows in between.
READS_FIRST: dict[str, Any] = {DB_FLAG: "auto"}
