"""Register reads on a Modbus TCP line, against a real TCP peer misbehaving in each way a
field device does: every fault ends in its own error class and counter, never a wrong
value, and the line keeps working afterwards."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator

import pytest

from gateway.drivers.base import DeviceError
from gateway.drivers.modbus_line import Endpoint, ModbusLine

Answer = Callable[[int, int, int, int], "bytes | str | None"]


def ok(tid: int, unit: int, fc: int, count: int) -> bytes:
    data = bytes([fc, 2 * count]) + b"".join(struct.pack(">H", 100 + i) for i in range(count))
    return struct.pack(">HHHB", tid, 0, len(data) + 1, unit) + data


@pytest.fixture
def device() -> Iterator[Callable[[Answer], int]]:
    """A TCP server answering each request with `answer(tid, unit, fc, count)`:
    bytes to send, None for silence, "close" to hang up."""
    servers: list[socket.socket] = []

    def start(answer: Answer) -> int:
        srv = socket.create_server(("127.0.0.1", 0))
        servers.append(srv)

        def talk(conn: socket.socket) -> None:
            with conn:
                while req := conn.recv(12):
                    tid, _pid, _len, unit, fc, _addr, count = struct.unpack(">HHHBBHH", req)
                    out = answer(tid, unit, fc, count)
                    if out == "close":
                        return
                    if isinstance(out, bytes):
                        conn.sendall(out)

        def accept() -> None:
            while True:
                try:
                    conn, _ = srv.accept()
                except OSError:
                    return
                threading.Thread(target=talk, args=(conn,), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()
        return int(srv.getsockname()[1])

    yield start
    for srv in servers:
        srv.close()


CASES: dict[str, tuple[Answer, str, str]] = {
    "garbage": (lambda t, u, f, c: b"hello world garbage!!", "frame", "not a Modbus TCP header"),
    "silent": (lambda t, u, f, c: None, "timeout", "no answer"),
    "partial": (lambda t, u, f, c: ok(t, u, f, c)[:9], "frame", "incomplete answer"),
    "close": (lambda t, u, f, c: "close", "connection", "connection lost"),
    "exception": (lambda t, u, f, c: struct.pack(">HHHBBB", t, 0, 3, u, f | 0x80, 2),
                  "exception", "exception response 2"),
    "short": (lambda t, u, f, c: ok(t, u, f, c - 1), "frame", "short answer, 3 of 4"),
    "wrong function": (lambda t, u, f, c: ok(t, u, 4, c), "frame", "function 4"),
}


def test_a_good_answer(device) -> None:  # type: ignore[no-untyped-def]
    line = ModbusLine(Endpoint("tcp", "127.0.0.1", device(ok)), timeout_s=0.5)
    assert line.read_holding(40000, 4, 1) == [100, 101, 102, 103]
    assert line.counters(1)["ok"] == 1 and line.stats.requests == 1


def test_a_late_answer_to_an_earlier_request_is_skipped(device) -> None:  # type: ignore[no-untyped-def]
    def late_then_ok(t: int, u: int, f: int, c: int) -> bytes:
        stale = ok(t - 1 if t > 1 else 999, u, f, c)
        return stale[:9] + b"\xde\xad" * c + ok(t, u, f, c)  # wrong values under another tid

    line = ModbusLine(Endpoint("tcp", "127.0.0.1", device(late_then_ok)), timeout_s=0.5)
    assert line.read_holding(40000, 4, 1) == [100, 101, 102, 103]


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_fault_has_its_class_and_counter(device, case: str) -> None:  # type: ignore[no-untyped-def]
    answer, kind, words = CASES[case]
    line = ModbusLine(Endpoint("tcp", "127.0.0.1", device(answer)), timeout_s=0.3)
    with pytest.raises(DeviceError, match=words) as err:
        line.read_holding(40000, 4, 1)
    assert err.value.kind == kind
    counts = line.counters(1)
    assert counts[kind] == 1 and counts["ok"] == 0
    assert sum(v for k, v in counts.items() if k != "ok") == 1
