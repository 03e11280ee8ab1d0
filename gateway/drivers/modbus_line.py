"""One Modbus connection (a TCP endpoint or an RS485 line) shared by the devices on it.

Several devices with the same `url` or `port` and different unit ids share one
`ModbusLine`: one pymodbus client, one lock, one request on the wire at a time, with a
quiet gap between frames on RTU. Errors become `DeviceError`s with a `kind` the gateway
counts (timeout, exception, connection).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlparse

from gateway.drivers.base import DeviceError

# Modbus RTU: frames are separated by at least 3.5 character times of silence
# (Modbus over serial line V1.02, §2.5.1.1); 1.75 ms fixed above 19200 baud.
RTU_CHARS_GAP = 3.5
RTU_BITS_PER_CHAR = 11  # start + 8 data + parity/stop + stop
# After a failed connection, wait this long before trying again, doubling up to the max:
# an inverter rebooting after a firmware update takes minutes, and hammering it helps no one.
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 30.0


@dataclass(frozen=True)
class Endpoint:
    """Where a line goes: ("tcp", host, port) or ("rtu", device path, baudrate)."""

    kind: str
    host: str
    port: int

    @classmethod
    def parse(cls, url: str | None, port: str | None, baudrate: int | None = None) -> Endpoint:
        if url:
            parsed = urlparse(url if "://" in url else f"tcp://{url}")
            if parsed.scheme not in ("tcp", "modbus", "modbus+tcp"):
                raise ValueError(f"unsupported Modbus URL scheme {parsed.scheme!r} in {url!r}")
            if not parsed.hostname:
                raise ValueError(f"Modbus URL without a host: {url!r}")
            return cls("tcp", parsed.hostname, parsed.port or 502)
        if port:
            return cls("rtu", port, baudrate or 9600)
        raise ValueError("a Modbus device needs a url (TCP) or a port (RTU)")

    def __str__(self) -> str:
        if self.kind == "tcp":
            return f"tcp://{self.host}:{self.port}"
        return f"{self.host}@{self.port}"


# Error classes counted per line and per unit; `gateway status` shows them.
ERROR_KINDS = ("timeout", "checksum", "frame", "exception", "connection")


@dataclass
class LineStats:
    """What happened on one line since it was opened: exact counts, no sampling."""

    requests: int = 0
    busy_s: float = 0.0
    reconnects: int = 0  # connections made after the first one
    errors: dict[str, int] = field(default_factory=dict)
    by_unit: dict[int, dict[str, int]] = field(default_factory=dict)

    def count(self, kind: str, unit: int | None = None) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        if unit is not None:
            per = self.by_unit.setdefault(unit, {})
            per[kind] = per.get(kind, 0) + 1

    def ok(self, unit: int) -> None:
        per = self.by_unit.setdefault(unit, {})
        per["ok"] = per.get("ok", 0) + 1


class _FrameError(Exception):
    """Bytes came on a TCP line, but not a Modbus TCP answer to the request."""


class _Silence(Exception):
    """No complete answer before the timeout (`got` bytes of one arrived)."""

    def __init__(self, got: int) -> None:
        super().__init__("no complete answer before the timeout")
        self.got = got


class _Closed(Exception):
    """The device closed the connection."""


# Modbus TCP (Modbus Messaging on TCP/IP Implementation Guide V1.0b, §3.1.3): a 7-byte
# MBAP header (transaction id, protocol id 0, length of what follows, unit id), then the PDU.
_HEAD = struct.Struct(">HHH")
_READ_REQUEST = struct.Struct(">HHHBBHH")  # MBAP + function, address, count
_MAX_TCP_LENGTH = 254  # unit id + the largest PDU (253 bytes)


def _read_tcp(sock: Any, tid: int, unit: int, function: int, address: int, count: int,
              timeout_s: float) -> tuple[int, bytes]:
    """One read request on a Modbus TCP socket: (function code answered, PDU data after it).

    The read path of every poll, so it is done here in a few system calls rather than
    through pymodbus' general transaction machinery (about half of a poll's CPU). Answers
    with another transaction id (late answers to an earlier request) are skipped.
    """
    sock.send(_READ_REQUEST.pack(tid, 0, 6, unit, function, address, count))
    buf = b""
    deadline = time.monotonic() + timeout_s
    while True:
        if len(buf) >= 6:
            rtid, pid, length = _HEAD.unpack_from(buf)
            if pid != 0 or not 2 <= length <= _MAX_TCP_LENGTH:
                raise _FrameError(f"not a Modbus TCP header: {buf[:8].hex(' ')}")
            end = 6 + length
            if len(buf) >= end:
                frame, buf = buf[6:end], buf[end:]
                if rtid == tid and frame[0] == unit:
                    return frame[1], frame[2:]
                continue
        if time.monotonic() >= deadline:
            raise _Silence(len(buf))
        try:
            data = sock.recv(4096)  # waits at most the line's timeout (see ModbusLine._tune)
        except (BlockingIOError, TimeoutError):
            raise _Silence(len(buf)) from None
        if not data:
            raise _Closed()
        buf += data


class ChecksumError(Exception):
    """An RTU answer arrived complete but its CRC is wrong (noise, a collision on the bus)."""


def _counting_rtu_framer() -> Any:
    """pymodbus's RTU framer, failing at once on a complete frame with a bad CRC.

    pymodbus drops such a frame silently and waits for the full timeout, so a noisy line
    would look like a dead one; here it is reported as a checksum error straight away (no
    other answer can follow on a master/slave bus) and counted as such.
    """
    from pymodbus.framer import FramerRTU
    from pymodbus.pdu import DecodePDU

    class CountingFramerRTU(FramerRTU):
        def decode(self, data: bytes) -> tuple[int, int, int, bytes]:
            used, dev_id, tid, frame = super().decode(data)
            if used and not frame:
                # only the CRC check consumes bytes without giving a frame
                raise ChecksumError(f"RTU frame with a bad CRC: {data.hex(' ')}")
            return used, dev_id, tid, frame

    return CountingFramerRTU(DecodePDU(False))


class ModbusLine:
    """A pymodbus sync client behind a lock. Thread-safe; reconnects with backoff.

    Register reads on a TCP line are framed here, on the client's own socket (one
    connection per device: many inverters accept only one); forwarded requests (the
    proxy) and RTU lines go through pymodbus.
    """

    _registry: ClassVar[dict[Endpoint, ModbusLine]] = {}
    _registry_lock = threading.Lock()

    def __init__(self, endpoint: Endpoint, timeout_s: float = 2.0) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.lock = threading.Lock()
        self.stats = LineStats()
        self.users = 0
        self._client: Any = None
        self._connected = False
        self._ever_connected = False
        self._next_connect = 0.0
        self._backoff = RECONNECT_MIN_S
        self._last_frame_end = 0.0
        self._rx_bytes = 0
        self._tid = 0  # transaction ids of the reads sent without pymodbus (TCP)
        self._tuned: Any = None  # the socket _tune() last set up
        self._sock_timeout: float | None = None
        if endpoint.kind == "rtu":
            char_s = RTU_BITS_PER_CHAR / endpoint.port
            self.gap_s = max(RTU_CHARS_GAP * char_s, 0.00175)
        else:
            self.gap_s = 0.0

    @classmethod
    def shared(cls, endpoint: Endpoint, timeout_s: float = 2.0) -> ModbusLine:
        """The line for this endpoint, created on first use, shared afterwards."""
        with cls._registry_lock:
            line = cls._registry.get(endpoint)
            if line is None:
                line = cls(endpoint, timeout_s)
                cls._registry[endpoint] = line
            line.users += 1
            return line

    def release(self) -> None:
        with ModbusLine._registry_lock:
            self.users -= 1
            if self.users <= 0:
                ModbusLine._registry.pop(self.endpoint, None)
                with self.lock:
                    self._close()

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            self._rx_bytes = len(data)
        return data

    def _make_client(self) -> Any:
        from pymodbus.client import ModbusSerialClient, ModbusTcpClient

        if self.endpoint.kind == "tcp":
            return ModbusTcpClient(
                self.endpoint.host,
                port=self.endpoint.port,
                timeout=self.timeout_s,
                retries=0,
                reconnect_delay=0,
                trace_packet=self._trace_packet,
            )
        client = ModbusSerialClient(
            self.endpoint.host,
            baudrate=self.endpoint.port,
            timeout=self.timeout_s,
            retries=0,
            reconnect_delay=0,
            trace_packet=self._trace_packet,
        )
        client.framer = _counting_rtu_framer()
        client.transaction.framer = client.framer
        return client

    def _close(self) -> None:
        if self._client is not None:
            # closing a broken socket must not hide the real error
            with contextlib.suppress(Exception):
                self._client.close()
        self._client = None
        self._connected = False

    def _ensure_connected(self) -> None:
        if self._connected:
            return
        now = time.monotonic()
        if now < self._next_connect:
            raise DeviceError(
                f"{self.endpoint}: not connected, next attempt in {self._next_connect - now:.1f} s",
                kind="connection",
            )
        if self._client is None:
            self._client = self._make_client()
        if not self._client.connect():
            self._next_connect = now + self._backoff
            self._backoff = min(self._backoff * 2, RECONNECT_MAX_S)
            self._close()
            raise DeviceError(f"{self.endpoint}: cannot connect", kind="connection")
        if self._ever_connected:
            self.stats.reconnects += 1
        self._ever_connected = True
        self._connected = True
        self._backoff = RECONNECT_MIN_S

    def _count(self, kind: str, unit: int | None = None) -> None:
        self.stats.count(kind, unit)

    def _transact(self, unit: int, what: str, call: Any) -> Any:
        """Run one request under the lock: gap, timing, error classes. Returns the PDU."""
        from pymodbus.exceptions import ConnectionException, ModbusIOException

        with self.lock:
            self._ensure_connected()
            if self.gap_s:
                wait = self._last_frame_end + self.gap_s - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            start = time.monotonic()
            self._rx_bytes = 0
            try:
                return call()
            except ChecksumError:
                self._count("checksum", unit)
                raise DeviceError(
                    f"{self.endpoint} unit {unit}: answer with a bad CRC {what}", kind="checksum"
                ) from None
            except ModbusIOException as exc:
                # bytes came but never made a frame: a truncated answer, not silence
                kind = "frame" if self._rx_bytes else "timeout"
                self._count(kind, unit)
                # a late answer would be taken for the next request's: start afresh
                self._close()
                detail = "incomplete answer" if kind == "frame" else "no answer"
                raise DeviceError(
                    f"{self.endpoint} unit {unit}: {detail} {what} ({exc})", kind=kind
                ) from None
            except ConnectionException as exc:
                self._count("connection", unit)
                self._close()
                raise DeviceError(
                    f"{self.endpoint}: connection lost ({exc})", kind="connection"
                ) from None
            finally:
                end = time.monotonic()
                self._last_frame_end = end
                self.stats.requests += 1
                self.stats.busy_s += end - start

    def read_holding(self, address: int, count: int, unit: int) -> list[int]:
        """One read holding registers request (function 3)."""
        return self.read_registers("holding", address, count, unit)

    def read_registers(self, table: str, address: int, count: int, unit: int) -> list[int]:
        """One read request: table "holding" (function 3) or "input" (function 4)."""
        if self.endpoint.kind == "tcp":
            return self._read_tcp(4 if table == "input" else 3, address, count, unit)
        what = f"reading {count} registers at {address}"

        def call() -> Any:
            if table == "input":
                return self._client.read_input_registers(address, count=count, device_id=unit)
            return self._client.read_holding_registers(address, count=count, device_id=unit)

        rr = self._transact(unit, what, call)
        if rr.isError():
            code = getattr(rr, "exception_code", None)
            self._count("exception", unit)
            raise DeviceError(
                f"{self.endpoint} unit {unit}: exception response {code} {what}",
                kind="exception",
            )
        regs = list(rr.registers)
        if len(regs) < count:
            self._count("frame", unit)
            raise DeviceError(
                f"{self.endpoint} unit {unit}: short answer, {len(regs)} of {count} registers",
                kind="frame",
            )
        self.stats.ok(unit)
        return regs[:count]

    def _tune(self, sock: Any) -> None:
        """Blocking reads that the kernel ends after the line's timeout (SO_RCVTIMEO): one
        system call per read, where a Python socket timeout or select() costs two."""
        sec = int(self.timeout_s)
        usec = int((self.timeout_s - sec) * 1e6)
        self._sock_timeout = self.timeout_s  # Python's own, if the kernel's cannot be set
        for layout in ("ll", "qq"):  # struct timeval: 32-bit or 64-bit time_t
            try:
                tv = struct.pack(layout, sec, usec)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
            except (OSError, struct.error):
                continue
            self._sock_timeout = None
            break
        sock.settimeout(self._sock_timeout)
        self._tuned = sock

    def _read_tcp(self, function: int, address: int, count: int, unit: int) -> list[int]:
        """`read_registers` on a TCP line: the same checks, counters and errors."""
        with self.lock:
            if not self._connected:
                self._ensure_connected()
            start = time.monotonic()
            try:
                sock = self._client.socket
                if sock is None:
                    raise _Closed()
                if sock is not self._tuned:
                    self._tune(sock)
                elif sock.gettimeout() != self._sock_timeout:
                    # pymodbus (a forwarded request) made it non-blocking
                    sock.settimeout(self._sock_timeout)
                self._tid = self._tid % 0xFFFF + 1
                answered, data = _read_tcp(sock, self._tid, unit, function, address, count,
                                           self.timeout_s)
            except _Silence as exc:
                kind = "frame" if exc.got else "timeout"
                self._count(kind, unit)
                self._close()  # a late answer would be taken for the next request's
                detail = "incomplete answer" if exc.got else "no answer"
                raise DeviceError(
                    f"{self.endpoint} unit {unit}: {detail} reading {count} registers at "
                    f"{address} (waited {self.timeout_s:g} s)",
                    kind=kind) from None
            except _FrameError as exc:
                self._count("frame", unit)
                self._close()
                raise DeviceError(f"{self.endpoint} unit {unit}: {exc}", kind="frame") from None
            except (_Closed, OSError) as exc:
                self._count("connection", unit)
                self._close()
                reason = str(exc) or "closed by the device"
                raise DeviceError(f"{self.endpoint}: connection lost ({reason})",
                                  kind="connection") from None
            finally:
                end = time.monotonic()
                self._last_frame_end = end
                stats = self.stats
                stats.requests += 1
                stats.busy_s += end - start
        if answered != function:
            if answered == function | 0x80 and data:
                self._count("exception", unit)
                raise DeviceError(
                    f"{self.endpoint} unit {unit}: exception response {data[0]} "
                    f"reading {count} registers at {address}", kind="exception")
            self._count("frame", unit)
            raise DeviceError(f"{self.endpoint} unit {unit}: answer with function {answered} "
                              f"to a function {function} request", kind="frame")
        n = len(data) - 1
        if n < 2 * count or data[0] != n or n % 2:
            self._count("frame", unit)
            raise DeviceError(
                f"{self.endpoint} unit {unit}: short answer, {max(n, 0) // 2} of {count} registers",
                kind="frame")
        self.stats.ok(unit)
        return list(struct.unpack_from(f">{count}H", data, 1))

    def execute(self, request: Any) -> Any:
        """Forward any request PDU (the Modbus proxy): an exception response is returned
        unchanged to the caller, not raised; no answer or a bad frame raises DeviceError."""
        unit = int(getattr(request, "dev_id", 0))
        what = f"forwarding function {getattr(request, 'function_code', '?')}"
        response = self._transact(unit, what, lambda: self._client.execute(False, request))
        if response.isError():
            self._count("exception", unit)
        else:
            self.stats.ok(unit)
        return response

    def counters(self, unit: int | None = None) -> dict[str, int]:
        """Error counts by class for the line, or for one unit on it (with "ok" answers)."""
        src = self.stats.errors if unit is None else self.stats.by_unit.get(unit, {})
        out = {k: src.get(k, 0) for k in ERROR_KINDS}
        if unit is not None:
            out["ok"] = src.get("ok", 0)
        return out
