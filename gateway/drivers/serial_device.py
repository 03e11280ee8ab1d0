"""Meters that talk on their own over a serial line: Linky TIC and DSMR P1.

The port stays open; each `read()` returns the newest complete frame, waiting for one if
none is buffered. Bytes before a start-of-frame character are dropped, so a reader that
opens the port in the middle of a frame resynchronises on the next one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from gateway.drivers import p1, tic
from gateway.drivers.base import DeviceError, Measurement

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
        return tic.decode_frame(self.reader.next_frame(self.timeout_s), self.mode)

    def read(self) -> Measurement:
        return self.read_frame().measurement()

    def close(self) -> None:
        self.reader.close()


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
        return p1.decode_telegram(self.reader.next_frame(self.timeout_s))

    def read(self) -> Measurement:
        return self.read_telegram().measurement()

    def close(self) -> None:
        self.reader.close()
