"""Counters, not log floods: one line per device and error class per minute."""

from __future__ import annotations

import logging

import pytest

from gateway.logs import RateLimited


def test_ten_errors_a_second_for_a_minute_give_at_most_two_lines(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    rl = RateLimited(logging.getLogger("quartier.test"), 60.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="quartier.test"):
        for i in range(600):  # 10 a second for 60 s, two classes
            now[0] = i / 10
            rl.log(logging.WARNING, "linky", "checksum", f"bad checksum {i}")
            rl.log(logging.WARNING, "linky", "frame", "short frame")
        now[0] = 60.0
        rl.log(logging.WARNING, "linky", "checksum", "bad checksum again")
    lines = [r.getMessage() for r in caplog.records]
    checksum = [m for m in lines if "kind=checksum" in m]
    assert len(checksum) == 2 and len([m for m in lines if "kind=frame" in m]) == 1
    # the second line tells how many occurrences the first one stood for since
    assert "count=1 " in checksum[0] and "count=600 " in checksum[1]
