"""One simulated RS485 line on a pseudo-terminal: several SunSpec devices, one unit id each.

Like a real bus: a request names a unit id; only that device answers, the others stay
silent; an unknown unit gets no answer at all. Frames are cut and checked with pymodbus's
RTU framer (CRC-16) and answers are written in one piece, after the time their bytes take
on the wire at the line's baud rate. The simulator's faults apply per device: no answer,
a bad CRC, dropped bytes, an exception response, garbage in a register.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import struct
import threading
import time
from collections.abc import Mapping

from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU

from firmware_sim import sunspec_map
from firmware_sim.modbus_server import SunSpecSim
from firmware_sim.serial_sim import _write, open_pty

log = logging.getLogger("firmware_sim.rtu")

# Modbus exception codes (Modbus application protocol V1.1b3, §7)
ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE, DEVICE_BUSY = 0x01, 0x02, 0x03, 0x06
READ_FUNCTIONS = (3, 4)
MAX_READ = 125
# room after the end marker, as on the TCP simulator: scanners read the next header there
SLACK = 8
BITS_PER_CHAR = 10  # 8N1: start + 8 data + stop


class RtuLine:
    """A pty carrying the devices in `sims` (unit id → simulated device)."""

    def __init__(self, sims: Mapping[int, SunSpecSim], baudrate: int = 9600, pace: bool = True):
        self.sims = dict(sims)
        self.baudrate = baudrate
        self.pace = pace
        self.master, self.slave, self.path = open_pty(baudrate, 8, "N")
        self.framer = FramerRTU(DecodePDU(True))
        self.buffer = b""
        self.requests = 0
        self.unanswered_units = 0  # requests for a unit id nobody on the line has
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- pure part: a request PDU in, an answer PDU (or silence) out -------------------
    def answer(self, sim: SunSpecSim, function: int, address: int, count: int) -> bytes | None:
        """The PDU the device sends back, None for no answer (faults decide)."""
        dice, faults = sim.dice, sim.faults
        sim.requests += 1
        if sim.silent_now() or dice.roll(faults.timeout_rate):
            sim.inject("timeout")
            return None
        if function not in READ_FUNCTIONS:
            return bytes([function | 0x80, ILLEGAL_FUNCTION])
        if not 1 <= count <= MAX_READ:
            return bytes([function | 0x80, ILLEGAL_VALUE])
        if dice.roll(faults.exception_rate):
            sim.inject("exception")
            return bytes([function | 0x80, DEVICE_BUSY])
        image = sim.image()
        offset = address - sunspec_map.BASE
        if offset < 0 or offset + count > len(image) + SLACK:
            return bytes([function | 0x80, ILLEGAL_ADDRESS])
        regs = (image + [0] * SLACK)[offset : offset + count]
        return bytes([function, 2 * count]) + struct.pack(f">{count}H", *regs)

    def frame_for(self, sim: SunSpecSim, unit: int, pdu: bytes) -> bytes:
        """The bytes on the wire for an answer, with the device's transmission faults."""
        frame = bytearray(self.framer.encode(pdu, unit, 0))
        if sim.dice.roll(sim.faults.drop_rate):
            sim.inject("frame")
            return sim.dice.drop_bytes(bytes(frame))
        if sim.dice.roll(sim.faults.bad_checksum_rate):
            sim.inject("checksum")
            frame[-1] ^= 0xFF
        return bytes(frame)

    # -- I/O ---------------------------------------------------------------------------
    def _handle(self, data: bytes) -> None:
        self.buffer += data
        while self.buffer:
            used, pdu = self.framer.handleFrame(self.buffer, 0, 0)
            if not used:
                return
            self.buffer = self.buffer[used:]
            if pdu is None:
                continue  # garbage or a bad CRC on the request: a real device stays silent
            self.requests += 1
            sim = self.sims.get(pdu.dev_id)
            if sim is None:
                self.unanswered_units += 1
                continue
            function = pdu.function_code
            answer = self.answer(
                sim, function, getattr(pdu, "address", 0), getattr(pdu, "count", 0)
            )
            if answer is None:
                continue
            out = self.frame_for(sim, pdu.dev_id, answer)
            if self.pace:
                time.sleep(len(out) * BITS_PER_CHAR / self.baudrate)
            _write(self.master, self.slave, out)

    def serve_forever(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.master, 4096)
            except BlockingIOError:
                continue
            except OSError:
                return
            try:
                self._handle(data)
            except Exception:  # a malformed request must not kill the line
                log.exception("bad request on %s", self.path)
                self.buffer = b""

    def start(self) -> RtuLine:
        self._thread = threading.Thread(target=self.serve_forever, name="rtu-line", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)
