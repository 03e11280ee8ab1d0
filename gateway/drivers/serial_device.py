"""Meters that talk on their own over a serial line: Linky TIC and DSMR P1.

The port stays open; each `read()` returns the newest valid frame received since the last
read, waiting for one if none is buffered. Every frame that arrives is checked and counted
(`counters()`: frames, ok, checksum, frame, timeout), also those a slower poll skips, so a
meter sending bad checksums ten times a second gives exact counts, not one error per poll.
Bytes before a start-of-frame character are dropped, so a reader that opens the port in
the middle of a frame resynchronises on the next one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any, TypeVar

from gateway.drivers import p1, tic
from gateway.drivers.base import DeviceError, Measurement

T = TypeVar("T")

# Read in small slices so that a frame is returned as soon as its end arrives.
_READ_SLICE_S = 0.05


class LineSettings:
    def __init__(self, baudrate: int, bytesize: int, parity: str, stopbits: int = 1) -> None:
        self.baudrate, self.bytesize, self.parity, self.stopbits = (
            baudrate,
            bytesize,
            parity,
            stopbits,
        )

    def __repr__(self) -> str:
        return f"{self.baudrate} {self.bytesize}{self.parity}{self.stopbits}"


def tic_settings(mode: str, baudrate: int | None = None) -> LineSettings:
    # Enedis-NOI-CPT_54E §5: 7 data bits, even parity, 1 stop bit, in both modes
    return LineSettings(baudrate or tic.BAUDRATE[mode], 7, "E")


def p1_settings(version: str, baudrate: int | None = None) -> LineSettings:
    # DSMR 4/5: 115200 8N1; DSMR 2.2/3: 9600 7E1
    if version in ("2.2", "2", "3"):
        return LineSettings(baudrate or 9600, 7, "E")
    return LineSettings(baudrate or 115200, 8, "N")


def open_port(port: str, settings: LineSettings, timeout_s: float = _READ_SLICE_S) -> Any:
    import serial

    try:
        return serial.Serial(
            port,
            baudrate=settings.baudrate,
            bytesize=settings.bytesize,
            parity=settings.parity,
            stopbits=settings.stopbits,
            timeout=timeout_s,
        )
    except (serial.SerialException, OSError) as exc:
        raise DeviceError(f"cannot open {port}: {exc}", kind="connection") from None


class FrameReader:
    """Accumulates bytes from a port and cuts frames with a pure splitter."""

    def __init__(
        self,
        port: str,
        settings: LineSettings,
        splitter: Callable[[bytes], tuple[list[bytes], bytes]],
        seven_bit: bool,
    ) -> None:
        self.port_name = port
        self.settings = settings
        self.splitter = splitter
        self.seven_bit = seven_bit
        self.buffer = b""
        self.serial: Any = None
        self.counters = {"frames": 0, "ok": 0, "checksum": 0, "frame": 0, "timeout": 0}

    def open(self) -> None:
        """Open the port now (it is opened on the first read otherwise)."""
        if self.serial is None:
            self.serial = open_port(self.port_name, self.settings)

    def next_decoded(self, timeout_s: float, decode: Callable[[bytes], T]) -> T:
        """The newest frame that decodes, among those received since the last call.

        Every frame is decoded and counted by outcome; when all new frames are bad, the
        newest one's typed error is raised (its class is what the gateway counts).
        """
        self.open()
        deadline = time.monotonic() + timeout_s
        good: list[T] = []
        error: DeviceError | None = None
        while True:
            for frame in self._read_frames(deadline, timeout_s):
                self.counters["frames"] += 1
                try:
                    good.append(decode(frame))
                    self.counters["ok"] += 1
                except DeviceError as exc:
                    self.counters[exc.kind] = self.counters.get(exc.kind, 0) + 1
                    error = exc
            if not self.serial.in_waiting:
                if good:
                    return good[-1]
                if error is not None:
                    raise error

    def _read_frames(self, deadline: float, timeout_s: float) -> list[bytes]:
        """Frames completed by the bytes available now (or within one read slice)."""
        try:
            waiting = self.serial.in_waiting
            chunk = self.serial.read(max(waiting, 1))
        except OSError as exc:
            self.close()
            raise DeviceError(f"{self.port_name}: {exc}", kind="connection") from None
        frames: list[bytes] = []
        if chunk:
            if self.seven_bit:
                # a 7-bit line read as 8 bits carries the parity bit in bit 7
                chunk = bytes(b & 0x7F for b in chunk)
            frames, self.buffer = self.splitter(self.buffer + chunk)
        if not frames and time.monotonic() > deadline:
            self.counters["timeout"] += 1
            raise DeviceError(
                f"{self.port_name}: no complete frame within {timeout_s:.1f} s "
                f"(line settings {self.settings})",
                kind="timeout",
            )
        return frames

    def next_frame(self, timeout_s: float) -> bytes:
        if self.serial is None:
            self.serial = open_port(self.port_name, self.settings)
        deadline = time.monotonic() + timeout_s
        frames: list[bytes] = []
        while True:
            try:
                waiting = self.serial.in_waiting
                chunk = self.serial.read(max(waiting, 1))
            except OSError as exc:
                self.close()
                raise DeviceError(f"{self.port_name}: {exc}", kind="connection") from None
            if chunk:
                if self.seven_bit:
                    # a 7-bit line read as 8 bits carries the parity bit in bit 7
                    chunk = bytes(b & 0x7F for b in chunk)
                new, self.buffer = self.splitter(self.buffer + chunk)
                frames += new
            if frames and not self.serial.in_waiting:
                return frames[-1]
            if time.monotonic() > deadline:
                raise DeviceError(
                    f"{self.port_name}: no complete frame within {timeout_s:.1f} s "
                    f"(line settings {self.settings})",
                    kind="timeout",
                )

    def close(self) -> None:
        if self.serial is not None:
            with contextlib.suppress(OSError):
                self.serial.close()
        self.serial = None
        self.buffer = b""


class TicDevice:
    """A Linky (or older electronic meter) TIC output. Implements `Device`."""

    def __init__(
        self,
        name: str,
        port: str,
        mode: str = "historique",
        baudrate: int | None = None,
        timeout_s: float = 3.0,
    ) -> None:
        if mode not in tic.BAUDRATE:
            raise ValueError(f"TIC mode must be historique or standard, not {mode!r}")
        self.name = name
        self.mode: tic.TicMode = "standard" if mode == "standard" else "historique"
        self.timeout_s = timeout_s
        self.reader = FrameReader(port, tic_settings(mode, baudrate), tic.split_frames, True)

    def read_frame(self) -> tic.TicFrame:
        return self.reader.next_decoded(self.timeout_s, self._decode)

    def _decode(self, raw: bytes) -> tic.TicFrame:
        frame = tic.decode_frame(raw, self.mode)
        if frame.errors:
            raise frame.errors[0]  # the first bad group names the frame's error class
        return frame

    def read(self) -> Measurement:
        return self.read_frame().measurement()

    def counters(self) -> dict[str, int]:
        """Every frame received since the port was opened, by outcome."""
        return dict(self.reader.counters)

    def close(self) -> None:
        self.reader.close()


def _checked_telegram(raw: bytes) -> p1.P1Telegram:
    telegram = p1.decode_telegram(raw)
    if telegram.errors:
        raise telegram.errors[0]
    return telegram


class P1Device:
    """A DSMR P1 port. Implements `Device`."""

    def __init__(
        self,
        name: str,
        port: str,
        version: str = "5",
        baudrate: int | None = None,
        timeout_s: float = 12.0,
    ) -> None:
        self.name = name
        self.timeout_s = timeout_s
        settings = p1_settings(version, baudrate)
        self.reader = FrameReader(port, settings, p1.split_telegrams, settings.bytesize == 7)

    def read_telegram(self) -> p1.P1Telegram:
        return self.reader.next_decoded(self.timeout_s, _checked_telegram)

    def read(self) -> Measurement:
        return self.read_telegram().measurement()

    def counters(self) -> dict[str, int]:
        """Every telegram received since the port was opened, by outcome."""
        return dict(self.reader.counters)

    def close(self) -> None:
        self.reader.close()
