"""`python main.py import-orders|import-products FILE.csv`: a progress bar, then a summary."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Literal, TextIO

from bot.services import build_services
from bot.settings import Settings
from scenarios.clock import SystemClock
from scenarios.importing import (
    ORDER_COLUMNS,
    PRODUCT_COLUMNS,
    REQUIRED_ORDER_COLUMNS,
    REQUIRED_PRODUCT_COLUMNS,
    ImportFileError,
    ImportSummary,
    import_orders,
    import_products,
    read_rows,
)
from scenarios.rules import Rules
from storage.database import Database
from storage.migrate import migrate

Kind = Literal["orders", "products"]
SHOWN_REJECTIONS = 50  # the rest are counted; a file with thousands of bad lines is one problem
EXIT_REJECTED = 1
EXIT_UNREADABLE = 2
# After each committed chunk of an import on SQLite, this long for the bot's writers.
SQLITE_PAUSE = 0.05
IMPORT_COLUMNS: dict[Kind, tuple[str, ...]] = {"orders": ORDER_COLUMNS, "products": PRODUCT_COLUMNS}


class ProgressBar:
    """A bar redrawn in place on a terminal; on a log file a line per tenth, no control codes."""

    WIDTH = 30

    def __init__(self, stream: TextIO, label: str) -> None:
        self._stream = stream
        self._label = label
        self._tty = stream.isatty()
        self._last_tenth = -1
        self._started = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        share = done / total if total else 1.0
        if self._tty:
            filled = round(share * self.WIDTH)
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            end = "\n" if done >= total else ""
            print(f"\r{self._label} [{bar}] {done}/{total}", end=end, file=self._stream)
            self._stream.flush()
            return
        tenth = int(share * 10)
        if tenth != self._last_tenth:
            self._last_tenth = tenth
            print(f"{self._label}: {done}/{total}", file=self._stream)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self._started


def report(summary: ImportSummary, *, kind: Kind, seconds: float, out: TextIO) -> None:
    if kind == "orders":
        print(
            f"orders: {summary.imported} imported, {summary.duplicates} duplicates (already "
            f"known, unchanged), {len(summary.rejected)} rejected, in {seconds:.1f} s",
            file=out,
        )
    else:
        print(
            f"products: {summary.imported} new, {summary.duplicates} updated, "
            f"{len(summary.rejected)} rejected, in {seconds:.1f} s",
            file=out,
        )
    for rejection in summary.rejected[:SHOWN_REJECTIONS]:
        subject = f" ({rejection.key})" if rejection.key else ""
        print(f"  line {rejection.line}{subject}: {rejection.message}", file=out)
    hidden = len(summary.rejected) - SHOWN_REJECTIONS
    if hidden > 0:
        print(f"  ... and {hidden} more rejected line(s)", file=out)


async def run_import(
    kind: Kind,
    path: Path,
    *,
    settings: Settings,
    rules: Rules,
    out: TextIO = sys.stdout,
    progress_stream: TextIO = sys.stderr,
) -> int:
    """Import the file; 0 when every line was imported or known, 1 when some were rejected."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as source:
            if kind == "orders":
                rows = read_rows(source, columns=ORDER_COLUMNS, required=REQUIRED_ORDER_COLUMNS)
            else:
                rows = read_rows(source, columns=PRODUCT_COLUMNS, required=REQUIRED_PRODUCT_COLUMNS)
    except (OSError, UnicodeDecodeError, ImportFileError) as error:
        print(f"error: {path}: {error}", file=sys.stderr)
        return EXIT_UNREADABLE
    db = Database(settings.database_url)
    clock = SystemClock()
    progress = ProgressBar(progress_stream, f"importing {kind}")
    services = build_services(settings, rules, db, clock)
    try:
        await migrate(db)
        if kind == "orders":
            summary = await import_orders(
                rows,
                desk=services.history_desk,
                uow=db,
                zone=settings.zone,
                currency=rules.shop.currency,
                progress=progress,
                # SQLite's lock is not fair between processes: a running bot gets a turn.
                pause=SQLITE_PAUSE if db.is_sqlite else 0.0,
            )
        else:
            summary = await import_products(
                rows, store=services.products, uow=db, clock=clock, progress=progress
            )
    finally:
        await db.close()
    report(summary, kind=kind, seconds=progress.seconds, out=out)
    return EXIT_REJECTED if summary.rejected else 0
