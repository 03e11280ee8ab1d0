"""Modbus TCP proxy: the owner's other tools read the inverter through the gateway.

Many inverters (SolarEdge, Huawei...) accept one Modbus TCP client; Home Assistant or
evcc and the gateway then fight over it. A `[[proxy]]` serves Modbus TCP on a local port
and forwards each request through the gateway's own connection to the device, under the
line's lock, so the device sees one client and one request at a time.

- Requests are forwarded unchanged: any unit id, any read function code.
- Writes (5, 6, 15, 16, 22, 23) are refused with ILLEGAL FUNCTION unless `writes = true`.
- A read whose exact request was answered less than `cache_age` ago is answered from
  the cache, without touching the line.
- A device that does not answer gives exception 0x0B (gateway target device failed to
  respond), a line that cannot connect 0x0A (gateway path unavailable), as Modbus
  gateways do (Modbus application protocol v1.1b3, §7).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from gateway.config import ProxyConfig
from gateway.drivers.base import DeviceError

log = logging.getLogger("quartier.gateway.proxy")

READ_FUNCTIONS = frozenset({1, 2, 3, 4, 7, 11, 12, 17, 20, 24, 43})
WRITE_FUNCTIONS = frozenset({5, 6, 15, 16, 21, 22, 23})
ILLEGAL_FUNCTION = 0x01
GATEWAY_PATH_UNAVAILABLE = 0x0A
GATEWAY_TARGET_FAILED = 0x0B
MAX_PDU = 253  # Modbus PDU limit (MODBUS over serial line §2.5.1; TCP ADU 260 bytes)
CLIENT_IDLE_S = 300.0  # close a local client silent for this long
CACHE_MAX = 512


def exception_pdu(function: int, code: int) -> bytes:
    return bytes([(function | 0x80) & 0xFF, code])


class ModbusProxy:
    """One `[[proxy]]`: a threaded TCP server forwarding to a device's Modbus line."""

    def __init__(self, cfg: ProxyConfig, device: Callable[[], Any]) -> None:
        self.cfg = cfg
        self._device = device  # returns the opened Device; its `.line` is the ModbusLine
        self.cache: dict[tuple[int, bytes], tuple[float, bytes]] = {}
        self.lock = threading.Lock()
        self.counters = {"requests": 0, "forwarded": 0, "cached": 0, "refused": 0, "failed": 0,
                         "clients": 0}
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server((cfg.host, cfg.port), Handler)
        self.thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self.thread = threading.Thread(target=self.server.serve_forever, name="modbus-proxy",
                                       daemon=True)
        self.thread.start()
        log.info("event=proxy_listening listen=%s:%d device=%s writes=%s", *self.address,
                 self.cfg.device, self.cfg.writes)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def stats(self) -> dict[str, Any]:
        host, port = self.address
        return {"listen": f"{host}:{port}", "device": self.cfg.device, **self.counters}

    # --- one local client ---------------------------------------------------------------

    def _serve(self, sock: socket.socket) -> None:
        self.counters["clients"] += 1
        sock.settimeout(CLIENT_IDLE_S)
        try:
            while True:
                header = _recv_exact(sock, 7)
                if header is None:
                    return
                tid, pid, length, unit = struct.unpack(">HHHB", header)
                if pid != 0 or not 2 <= length <= MAX_PDU + 1:
                    return  # not Modbus TCP: drop the connection, as devices do
                pdu = _recv_exact(sock, length - 1)
                if pdu is None:
                    return
                try:
                    answer = self.handle(unit, pdu)
                except Exception:  # a bug here must cost one answer, not the client's connection
                    log.exception("event=proxy_error device=%s unit=%d function=%d", self.cfg.device,
                                  unit, pdu[0])
                    self.counters["failed"] += 1
                    answer = exception_pdu(pdu[0], GATEWAY_TARGET_FAILED)
                sock.sendall(struct.pack(">HHHB", tid, 0, len(answer) + 1, unit) + answer)
        except OSError:
            return
        finally:
            with contextlib.suppress(OSError):
                sock.close()

    def handle(self, unit: int, pdu: bytes) -> bytes:
        """The response PDU for a request PDU to `unit`."""
        self.counters["requests"] += 1
        function = pdu[0]
        is_read = function in READ_FUNCTIONS
        if not is_read and not (self.cfg.writes and function in WRITE_FUNCTIONS):
            self.counters["refused"] += 1
            return exception_pdu(function, ILLEGAL_FUNCTION)
        key = (unit, pdu)
        if is_read and self.cfg.cache_age_s > 0:
            with self.lock:
                hit = self.cache.get(key)
            if hit is not None and time.monotonic() - hit[0] <= self.cfg.cache_age_s:
                self.counters["cached"] += 1
                return hit[1]
        answer = self._forward(unit, pdu)
        if is_read and self.cfg.cache_age_s > 0 and not answer[0] & 0x80:
            with self.lock:
                if len(self.cache) >= CACHE_MAX:
                    self.cache.clear()
                self.cache[key] = (time.monotonic(), answer)
        elif not is_read:
            with self.lock:
                self.cache.clear()  # a write may change what reads return
        return answer

    def _forward(self, unit: int, pdu: bytes) -> bytes:
        from pymodbus.exceptions import ModbusException
        from pymodbus.pdu import DecodePDU

        function = pdu[0]
        try:
            request = DecodePDU(is_server=True).decode(pdu)
        except ModbusException:
            request = None
        if request is None:
            self.counters["refused"] += 1
            return exception_pdu(function, ILLEGAL_FUNCTION)
        request.dev_id = unit
        try:
            line = self._device().line
        except (DeviceError, AttributeError):
            self.counters["failed"] += 1
            return exception_pdu(function, GATEWAY_PATH_UNAVAILABLE)
        try:
            execute = getattr(line, "execute", None)
            response = execute(request) if execute is not None else _execute(line, request)
        except DeviceError as exc:
            self.counters["failed"] += 1
            code = GATEWAY_TARGET_FAILED if exc.kind == "timeout" else GATEWAY_PATH_UNAVAILABLE
            return exception_pdu(function, code)
        self.counters["forwarded"] += 1
        return bytes([response.function_code & 0xFF]) + response.encode()


def _execute(line: Any, request: Any) -> Any:
    """Send one request PDU on a ModbusLine, as its own read methods do: under its lock,
    after the RTU inter-frame gap, counting time and errors; an exception response is
    returned (the local client gets it unchanged), not raised."""
    from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

    with line.lock:
        line._ensure_connected()
        if line.gap_s:
            wait = line._last_frame_end + line.gap_s - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        start = time.monotonic()
        try:
            return line._client.execute(False, request)
        except ModbusIOException as exc:
            line._count("timeout")
            line._close()  # a late answer would be taken for the next request's
            raise DeviceError(f"{line.endpoint}: no answer ({exc})", kind="timeout") from None
        except ConnectionException as exc:
            line._count("connection")
            line._close()
            raise DeviceError(f"{line.endpoint}: connection lost ({exc})",
                              kind="connection") from None
        except ModbusException as exc:  # an answer pymodbus could not match or decode
            line._count("frame")
            line._close()
            raise DeviceError(f"{line.endpoint}: bad answer ({exc})", kind="frame") from None
        finally:
            end = time.monotonic()
            line._last_frame_end = end
            line.stats.requests += 1
            line.stats.busy_s += end - start


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf
