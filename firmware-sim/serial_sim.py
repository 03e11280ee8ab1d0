"""Simulated Linky (TIC) and DSMR (P1) meters writing frames on a pseudo-terminal.

Frame builders are pure (state in, bytes out); `run_serial_sim` is the thin loop around
them: a pty configured with the meter's line settings, one frame per interval, faults.
"""

from __future__ import annotations

import os
import random
import sys
import termios
import time
import tty
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from firmware_sim.faults import FaultDice, Faults
from firmware_sim.plant import Plant, SimClock
from gateway.drivers import p1, tic

# Seconds between frames of real meters: Linky historique sends a frame as soon as the
# previous one is out (≈1.5 s of 1200 baud); standard ≈1 s; DSMR 5 every second, DSMR 4
# and 2.2 every ten seconds.
NOMINAL_INTERVAL_S = {"historique": 1.5, "standard": 1.0, "5": 1.0, "4": 10.0, "2.2": 10.0}

_BAUD = {
    1200: termios.B1200,
    9600: termios.B9600,
    19200: termios.B19200,
    38400: termios.B38400,
    115200: termios.B115200,
}


@dataclass(frozen=True)
class MeterState:
    when: datetime
    import_wh: int
    export_wh: int
    p_w: int  # > 0 import
    v_dv: int


def meter_ids(seed: int) -> tuple[str, str]:
    """(meter serial, meter point) stable per seed: ADSC/ADCO-like and PRM-like numbers."""
    rng = random.Random(seed)
    return f"0{rng.randrange(10**10, 10**11)}", f"{rng.randrange(10**13, 10**14)}"


def tic_groups(mode: str, s: MeterState, seed: int) -> list[tuple[str, str] | tuple[str, str, str]]:
    serial, prm = meter_ids(seed)
    amps = max(0, abs(s.p_w) * 10 // max(s.v_dv, 1))
    va_in = max(0, s.p_w)
    if mode == "historique":
        return [
            ("ADCO", serial),
            ("OPTARIF", "BASE"),
            ("ISOUSC", "45"),
            ("BASE", f"{s.import_wh % 10**9:09d}"),
            ("PTEC", "TH.."),
            ("IINST", f"{amps:03d}"),
            ("IMAX", "090"),
            ("PAPP", f"{min(va_in, 99999):05d}"),
            ("HHPHC", "A"),
            ("MOTDETAT", "000000"),
        ]
    local = s.when.astimezone(UTC) + timedelta(hours=1)
    stamp = "H" + local.strftime("%y%m%d%H%M%S")
    return [
        ("ADSC", serial),
        ("VTIC", "02"),
        ("DATE", stamp, ""),
        ("NGTF", "      BASE      "),
        ("LTARF", "      BASE      "),
        ("EAST", f"{s.import_wh % 10**9:09d}"),
        ("EASF01", f"{s.import_wh % 10**9:09d}"),
        ("EASF02", "000000000"),
        ("EASD01", f"{s.import_wh % 10**9:09d}"),
        ("EAIT", f"{s.export_wh % 10**9:09d}"),
        ("IRMS1", f"{amps:03d}"),
        ("URMS1", f"{s.v_dv // 10:03d}"),
        ("PREF", "09"),
        ("PCOUP", "09"),
        ("SINSTS", f"{min(va_in, 99999):05d}"),
        ("SMAXSN", stamp, f"{min(va_in, 99999):05d}"),
        ("SINSTI", f"{min(max(0, -s.p_w), 99999):05d}"),
        ("STGE", "003A0001"),
        ("MSG1", "PAS DE          MESSAGE         "),
        ("PRM", prm),
        ("RELAIS", "000"),
        ("NTARF", "01"),
        ("NJOURF", "00"),
        ("NJOURF+1", "00"),
    ]


def p1_lines(version: str, s: MeterState, seed: int) -> tuple[str, list[str]]:
    serial, _ = meter_ids(seed)
    ident = serial.encode("ascii").hex().upper()
    imp_kwh, exp_kwh = s.import_wh / 1000, s.export_wh / 1000
    # two tariffs: a third of the energy at the low tariff
    imp1 = s.import_wh // 3
    exp1 = s.export_wh // 3
    pin, pout = max(0, s.p_w) / 1000, max(0, -s.p_w) / 1000
    amps = abs(s.p_w) * 10 // max(s.v_dv, 1)
    stamp = s.when.astimezone(UTC).strftime("%y%m%d%H%M%S") + "W"
    _ = imp_kwh, exp_kwh
    if version == "2.2":
        header = "ISk5\\2MT382-1004"
        return header, [
            f"0-0:96.1.1({serial})",
            f"1-0:1.8.1({imp1 / 1000:09.3f}*kWh)",
            f"1-0:1.8.2({(s.import_wh - imp1) / 1000:09.3f}*kWh)",
            f"1-0:2.8.1({exp1 / 1000:09.3f}*kWh)",
            f"1-0:2.8.2({(s.export_wh - exp1) / 1000:09.3f}*kWh)",
            "0-0:96.14.0(0001)",
            f"1-0:1.7.0({pin:07.2f}*kW)",
            f"1-0:2.7.0({pout:07.2f}*kW)",
        ]
    header = "ISK5\\2M550T-1012" if version == "5" else "KFM5KAIFA-METER"
    return header, [
        f"1-3:0.2.8({'50' if version == '5' else '42'})",
        f"0-0:1.0.0({stamp})",
        f"0-0:96.1.1({ident})",
        f"1-0:1.8.1({imp1 / 1000:010.3f}*kWh)",
        f"1-0:1.8.2({(s.import_wh - imp1) / 1000:010.3f}*kWh)",
        f"1-0:2.8.1({exp1 / 1000:010.3f}*kWh)",
        f"1-0:2.8.2({(s.export_wh - exp1) / 1000:010.3f}*kWh)",
        "0-0:96.14.0(0002)",
        f"1-0:1.7.0({pin:06.3f}*kW)",
        f"1-0:2.7.0({pout:06.3f}*kW)",
        "0-0:96.7.21(00004)",
        "0-0:96.7.9(00002)",
        f"1-0:32.7.0({s.v_dv / 10:05.1f}*V)",
        f"1-0:31.7.0({amps:03d}*A)",
        f"1-0:21.7.0({pin:06.3f}*kW)",
        f"1-0:22.7.0({pout:06.3f}*kW)",
    ]


def build_frame(kind: str, variant: str, s: MeterState, seed: int, dice: FaultDice) -> bytes | None:
    """The next frame, with this frame's faults applied (None: the meter skips a frame)."""
    f = dice.faults
    if dice.roll(f.timeout_rate):
        return None
    glitch = dice.roll(f.glitch_rate)
    if kind == "tic":
        mode: tic.TicMode = "standard" if variant == "standard" else "historique"
        groups = tic_groups(variant, s, seed)
        if glitch:
            label = "EAST" if mode == "standard" else "BASE"
            groups = [
                (g[0], f"{dice.rng.randrange(10**9):09d}") if g[0] == label else g for g in groups
            ]
        frame = bytearray(tic.encode_frame(groups, mode))
        if dice.roll(f.bad_checksum_rate):
            # the checksum of one group: the byte before one of the CRs
            crs = [i for i, b in enumerate(frame) if b == 0x0D]
            i = dice.rng.choice(crs) - 1
            frame[i] = 0x20 + ((frame[i] - 0x20 + 1 + dice.rng.randrange(62)) % 64)
    else:
        header, lines = p1_lines(variant, s, seed)
        if glitch:
            lines = [
                f"1-0:1.8.1({dice.rng.randrange(10**6):06d}.{dice.rng.randrange(1000):03d}*kWh)"
                if line.startswith("1-0:1.8.1(")
                else line
                for line in lines
            ]
        frame = bytearray(p1.encode_telegram(header, lines, with_crc=variant != "2.2"))
        if variant != "2.2" and dice.roll(f.bad_checksum_rate):
            bang = frame.rfind(b"!")
            frame[bang + 1 : bang + 5] = (
                f"{(p1.crc16(bytes(frame[: bang + 1])) + 1) & 0xFFFF:04X}".encode()
            )
    out = bytes(frame)
    if dice.roll(f.drop_rate):
        out = dice.drop_bytes(out)
    return out


def open_pty(baudrate: int, bytesize: int, parity: str) -> tuple[int, int, str]:
    """A pty pair in raw mode with the meter's line settings on the terminal side."""
    master, slave = os.openpty()
    tty.setraw(slave)
    attrs = termios.tcgetattr(slave)
    cflag = attrs[2] & ~(termios.CSIZE | termios.PARENB | termios.PARODD | termios.CSTOPB)
    cflag |= termios.CS7 if bytesize == 7 else termios.CS8
    if parity == "E":
        cflag |= termios.PARENB
    attrs[2] = cflag | termios.CREAD | termios.CLOCAL
    attrs[4] = attrs[5] = _BAUD[baudrate]
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    os.set_blocking(master, False)
    return master, slave, os.ttyname(slave)


def _write(master: int, slave: int, data: bytes) -> None:
    """Write like a meter: it never waits for a reader; unread old bytes are lost."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(master, view)
        except BlockingIOError:
            termios.tcflush(slave, termios.TCIFLUSH)
            continue
        view = view[n:]


def run_serial_sim(
    kind: str,
    variant: str,
    pty: bool,
    interval: float | None,
    seed: int,
    speed: float,
    start: datetime,
    peak_w: int,
    count: int,
    faults: Faults,
) -> None:
    clock = SimClock(speed=speed, start=start)
    plant = Plant(kind="meter", seed=seed, peak_w=peak_w, faults=faults)
    if kind == "tic" and variant == "historique":
        plant.peak_w = 0  # the historique mode has no export index: a consumer
    dice = FaultDice(faults, seed)
    period = interval if interval is not None else NOMINAL_INTERVAL_S[variant]
    if kind == "tic":
        settings = (tic.BAUDRATE[variant], 7, "E")
    else:
        settings = (9600, 7, "E") if variant == "2.2" else (115200, 8, "N")
    if pty:
        master, slave, path = open_pty(*settings)
        print(path, flush=True)
    else:
        master = slave = -1
    sent = 0
    try:
        while count == 0 or sent < count:
            st = plant.state(clock.now(), clock.elapsed_s())
            s = MeterState(clock.now(), st.e_wh, st.e_exp_wh, st.p_w, st.v_dv)
            frame = build_frame(kind, variant, s, seed, dice)
            if frame is not None:
                if pty:
                    _write(master, slave, frame)
                else:
                    sys.stdout.buffer.write(frame)
                    sys.stdout.buffer.flush()
            sent += 1
            time.sleep(period)
    except KeyboardInterrupt:
        pass
    finally:
        if pty:
            os.close(master)
            os.close(slave)
