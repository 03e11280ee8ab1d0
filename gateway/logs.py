"""Structured, journald-friendly logs, and error lines rate-limited per device and class.

Lines are `event=... key=value ...` (logfmt), one per event. Under systemd (JOURNAL_STREAM
is set) each line starts with its syslog priority `<N>`, which journald turns into the
entry's priority (SyslogLevelPrefix=, on by default), and carries no timestamp: the journal
has its own. Elsewhere lines start with an ISO time and the level.

A meter sending bad checksums ten times a second must not write ten lines a second: each
(device, error class) is logged at most once per `RATE_LIMIT_S`, with the count of
occurrences since its previous line; the exact counts are in `gateway status`.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable

RATE_LIMIT_S = 60.0

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"<{_PRIORITY.get(record.levelno, 6)}>{record.getMessage()}"


def setup(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(message)s", datefmt="%Y-%m-%dT%H:%M:%S"))
    root = logging.getLogger("quartier")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    # apscheduler says "maximum number of running instances reached" whenever a slow
    # device's poll is skipped: that is the intended no-overlap behaviour, not news.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    # pymodbus logs every timeout itself; the gateway counts them and logs them
    # rate-limited per device (RateLimited), so its own lines would only be a flood.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


def quote(value: object) -> str:
    text = str(value)
    if text and all(c.isalnum() or c in "._:/-+@" for c in text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


class RateLimited:
    """Logs each key at most once per `interval_s`, with the count since the last line."""

    def __init__(self, logger: logging.Logger, interval_s: float = RATE_LIMIT_S,
                 clock: Callable[[], float] | None = None) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self._clock = clock or time.monotonic
        self._last: dict[tuple[str, str], float] = {}
        self._suppressed: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def log(self, level: int, device: str, kind: str, message: str) -> bool:
        """Log unless this (device, kind) was logged less than interval_s ago."""
        key = (device, kind)
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            self._last[key] = now
            count = self._suppressed.pop(key, 0) + 1
        self.logger.log(level, "event=device_error dev=%s kind=%s count=%d error=%s",
                        quote(device), kind, count, quote(message))
        return True

    def reset(self, device: str) -> None:
        with self._lock:
            for key in [k for k in self._last if k[0] == device]:
                self._last.pop(key, None)
                self._suppressed.pop(key, None)
