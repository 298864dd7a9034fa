"""Log setup: one line per event, secrets never printed, noisy libraries kept quiet."""

from __future__ import annotations

import logging
import sys


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        force=True,
    )
    # aiogram logs every handled update at INFO; that is DEBUG material for an operator.
    logging.getLogger("aiogram.event").setLevel(max(logging.getLevelName(level), logging.WARNING))
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
