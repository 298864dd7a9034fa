"""Run the bot exactly as an operator does (python main.py) against the fake Telegram."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class BotProcess:
    """``python main.py`` in a subprocess with its own environment and working directory."""

    def __init__(self, *, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        inherited = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG"}}
        # PYTHONFAULTHANDLER: a bot that will not stop is sent SIGABRT and prints where it hangs.
        self.env = {**inherited, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1", **env}
        self.process: asyncio.subprocess.Process | None = None
        self.log = workdir / "bot.log"

    async def start(self) -> None:
        log = self.log.open("ab")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "main.py"),
            cwd=self.workdir,
            env=self.env,
            stdout=log,
            stderr=log,
        )
        log.close()

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    async def wait_for_log(self, fragment: str, *, timeout: float = 60.0) -> None:
        """Wait until the bot logged ``fragment`` (startup takes a few seconds: imports)."""
        try:
            async with asyncio.timeout(timeout):
                while fragment not in self.output():
                    if self.process is not None and self.process.returncode is not None:
                        raise AssertionError(f"bot exited early:\n{self.output()}")
                    await asyncio.sleep(0.1)
        except TimeoutError:  # what the bot did say is what tells why
            tail = "\n".join(self.output().splitlines()[-60:])
            raise AssertionError(
                f"the bot did not log {fragment!r} within {timeout:.0f} s; its log ends:\n{tail}"
            ) from None

    async def stop(self, *, timeout: float = 20.0) -> int:
        """SIGTERM, as a service manager would; returns the exit status."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                return await self.process.wait()
        except TimeoutError:
            self.process.send_signal(signal.SIGABRT)  # faulthandler writes every thread's stack
            await self.process.wait()
            raise AssertionError(
                f"the bot did not stop {timeout:.0f} s after SIGTERM:\n{self.output()}"
            ) from None

    async def kill(self) -> None:
        """kill -9: no chance to clean up."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
