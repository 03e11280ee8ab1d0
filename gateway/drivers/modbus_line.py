"""One Modbus connection (a TCP endpoint or an RS485 line) shared by the devices on it.

Several devices with the same `url` or `port` and different unit ids share one
`ModbusLine`: one pymodbus client, one lock, one request on the wire at a time, with a
quiet gap between frames on RTU. Errors become `DeviceError`s with a `kind` the gateway
counts (timeout, exception, connection).
"""

from __future__ import annotations

import contextlib
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


@dataclass
class LineStats:
    requests: int = 0
    busy_s: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)


class ModbusLine:
    """A pymodbus sync client behind a lock. Thread-safe; reconnects with backoff."""

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
        self._next_connect = 0.0
        self._backoff = RECONNECT_MIN_S
        self._last_frame_end = 0.0
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

    def _make_client(self) -> Any:
        from pymodbus.client import ModbusSerialClient, ModbusTcpClient

        if self.endpoint.kind == "tcp":
            return ModbusTcpClient(
                self.endpoint.host,
                port=self.endpoint.port,
                timeout=self.timeout_s,
                retries=0,
                reconnect_delay=0,
            )
        return ModbusSerialClient(
            self.endpoint.host,
            baudrate=self.endpoint.port,
            timeout=self.timeout_s,
            retries=0,
            reconnect_delay=0,
        )

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
        self._connected = True
        self._backoff = RECONNECT_MIN_S

    def _count(self, kind: str) -> None:
        self.stats.errors[kind] = self.stats.errors.get(kind, 0) + 1

    def read_holding(self, address: int, count: int, unit: int) -> list[int]:
        """One read holding registers request (function 3)."""
        return self.read_registers("holding", address, count, unit)

    def read_registers(self, table: str, address: int, count: int, unit: int) -> list[int]:
        """One read request: table "holding" (function 3) or "input" (function 4)."""
        from pymodbus.exceptions import ConnectionException, ModbusIOException

        with self.lock:
            self._ensure_connected()
            if self.gap_s:
                wait = self._last_frame_end + self.gap_s - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            start = time.monotonic()
            try:
                if table == "input":
                    rr = self._client.read_input_registers(address, count=count, device_id=unit)
                else:
                    rr = self._client.read_holding_registers(address, count=count, device_id=unit)
            except ModbusIOException as exc:
                self._count("timeout")
                # a late answer would be taken for the next request's: start afresh
                self._close()
                raise DeviceError(
                    f"{self.endpoint} unit {unit}: no answer reading {count} registers at "
                    f"{address} ({exc})",
                    kind="timeout",
                ) from None
            except ConnectionException as exc:
                self._count("connection")
                self._close()
                raise DeviceError(
                    f"{self.endpoint}: connection lost ({exc})", kind="connection"
                ) from None
            finally:
                end = time.monotonic()
                self._last_frame_end = end
                self.stats.requests += 1
                self.stats.busy_s += end - start
            if rr.isError():
                code = getattr(rr, "exception_code", None)
                self._count("exception")
                raise DeviceError(
                    f"{self.endpoint} unit {unit}: exception response {code} reading {count} "
                    f"registers at {address}",
                    kind="exception",
                )
            regs = list(rr.registers)
            if len(regs) < count:
                self._count("frame")
                raise DeviceError(
                    f"{self.endpoint} unit {unit}: short answer, {len(regs)} of {count} registers",
                    kind="frame",
                )
            return regs[:count]
