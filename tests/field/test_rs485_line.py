"""Two devices on one simulated RS485 line (one pty, unit ids 1 and 2), each polled every
second through the drivers' shared ModbusLine: no CRC error, no timeout, every reading
equal to what the simulated device encoded. (bench/rs485_line.py runs the full minute.)"""

from __future__ import annotations

from tests.field.field_helpers import PollLog, make_sim, open_on, poll_every, rtu_line  # noqa: F401

DURATION_S = 20


def test_two_devices_share_one_line_for_twenty_seconds(rtu_line) -> None:  # noqa: F811
    inverter, meter = make_sim("inverter", 1, seed=1), make_sim("meter", 2, seed=2)
    line = rtu_line({1: inverter, 2: meter}, baudrate=9600)
    inv, grid = open_on(line, 1, "production"), open_on(line, 2, "grid")
    try:
        assert inv.line is grid.line  # one connection, one lock
        logs = PollLog(), PollLog()
        threads = [poll_every(inv, inverter, 1.0, DURATION_S, logs[0]),
                   poll_every(grid, meter, 1.0, DURATION_S, logs[1])]
        for t in threads:
            t.join(DURATION_S + 10)
        for log in logs:
            assert log.polls >= DURATION_S - 1
            assert log.errors == {} and log.wrong == []
            assert log.correct == log.polls
        stats = inv.line.stats
        assert stats.errors == {}
        assert inv.counters()["checksum"] == inv.counters()["timeout"] == 0
        assert grid.counters()["ok"] >= DURATION_S
        # the line really carried both: requests for each unit, nothing for others
        assert set(stats.by_unit) == {1, 2} and line.unanswered_units == 0
        assert 0 < stats.busy_s < DURATION_S
    finally:
        inv.close()
        grid.close()
