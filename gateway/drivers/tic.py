"""Linky TIC (télé-information client) frames: a pure decoder, bytes in, values out.

Reference: Enedis-NOI-CPT_54E (Linky, both modes) and Enedis-NOI-CPT_02E (historique).

A frame is STX (0x02) … ETX (0x03); each group is LF label SEP [horodatage SEP] data SEP
checksum CR. The checksum is `(sum of bytes & 0x3F) + 0x20`, so it can itself be a space:
- historique (1200 baud 7E1): SEP is SP and the sum covers label SP data (not the last SP);
- standard (9600 baud 7E1): SEP is HT and the sum covers everything up to and including
  the HT before the checksum.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from gateway.drivers.base import DeviceError, Measurement

STX, ETX, EOT, LF, CR, SP, HT = 0x02, 0x03, 0x04, 0x0A, 0x0D, 0x20, 0x09

TicMode = Literal["historique", "standard"]

# Line settings, from the Enedis specification.
BAUDRATE: dict[str, int] = {"historique": 1200, "standard": 9600}

# A frame longer than this is not a Linky frame (standard frames are ~1.2 kB); it keeps a
# reader from buffering forever on a line that never sends ETX.
MAX_FRAME_BYTES = 4096

# Historique energy indexes (Wh) per tariff option; the total is the sum of those present.
_HISTORIQUE_INDEXES = (
    "BASE",
    "HCHC",
    "HCHP",
    "EJPHN",
    "EJPHPM",
    "BBRHCJB",
    "BBRHPJB",
    "BBRHCJW",
    "BBRHPJW",
    "BBRHCJR",
    "BBRHPJR",
)


class TicError(DeviceError):
    """A TIC frame that cannot be trusted."""

    kind = "frame"


class TicChecksumError(TicError):
    kind = "checksum"

    def __init__(self, group: str, expected: str, actual: str) -> None:
        super().__init__(
            f"TIC checksum mismatch on group {group}: expected {expected!r}, got {actual!r}"
        )
        self.group, self.expected, self.actual = group, expected, actual


@dataclass(frozen=True)
class TicGroup:
    label: str
    data: str
    horodatage: str | None = None


@dataclass(frozen=True)
class TicFrame:
    mode: TicMode | None
    groups: dict[str, TicGroup]
    errors: tuple[TicError, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.errors

    def measurement(self) -> Measurement:
        """The frame in reading units; raises the first error if any group was bad."""
        if self.errors:
            raise self.errors[0]
        return to_measurement(self)


def checksum(payload: bytes) -> int:
    return (sum(payload) & 0x3F) + 0x20


def decode_group(raw: bytes, mode: TicMode | None = None) -> tuple[TicGroup, TicMode]:
    """Decode one group, the bytes between LF and CR (both excluded)."""
    if len(raw) < 3:
        raise TicError(f"TIC group too short: {raw!r}")
    sep = raw[-2]
    if sep not in (SP, HT):
        raise TicError(f"TIC group without separator before its checksum: {raw!r}")
    group_mode: TicMode = "standard" if sep == HT else "historique"
    if mode is not None and group_mode != mode:
        raise TicError(f"TIC group in {group_mode} mode inside a {mode} frame: {raw!r}")
    actual = raw[-1]
    if group_mode == "standard":
        covered = raw[:-1]
        fields = raw[:-2].split(b"\t")
    else:
        covered = raw[:-2]
        fields = raw[:-2].split(b" ", 1)
    try:
        text = [f.decode("ascii") for f in fields]
    except UnicodeDecodeError:
        raise TicError(f"TIC group with non-ASCII bytes: {raw!r}") from None
    label = text[0]
    if not label or not label.isprintable():
        raise TicError(f"TIC group without a label: {raw!r}")
    expected = checksum(covered)
    if expected != actual:
        raise TicChecksumError(label, chr(expected), chr(actual))
    if len(text) == 2:
        return TicGroup(label, text[1]), group_mode
    if len(text) == 3:
        return TicGroup(label, text[2], horodatage=text[1]), group_mode
    raise TicError(f"TIC group {label} has {len(text)} fields")


def decode_frame(frame: bytes, mode: TicMode | None = None) -> TicFrame:
    """Decode one frame (with or without its STX/ETX). Never raises: errors are collected."""
    body = frame.strip(b"\x02\x03")
    groups: dict[str, TicGroup] = {}
    errors: list[TicError] = []
    seen_mode: TicMode | None = mode
    for chunk in body.split(b"\n")[1:] if body.startswith(b"\n") else body.split(b"\n"):
        if not chunk.strip(b"\r\n"):
            continue
        end = chunk.find(b"\r")
        if end < 0:
            errors.append(TicError(f"TIC group not terminated by CR: {chunk[:40]!r}"))
            continue
        try:
            group, group_mode = decode_group(chunk[:end], seen_mode)
        except TicError as exc:
            errors.append(exc)
            continue
        seen_mode = group_mode
        groups[group.label] = group
    if not groups and not errors:
        errors.append(TicError("TIC frame without any group"))
    return TicFrame(mode=seen_mode, groups=groups, errors=tuple(errors))


def split_frames(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Cut complete STX…ETX frames out of a stream buffer.

    Returns the frames (STX and ETX included) and the bytes to keep for next time. Bytes
    before the first STX are a partial frame from before we started listening: dropped.
    An EOT interrupts the frame in progress (the meter aborted it).
    """
    frames: list[bytes] = []
    pos = 0
    while True:
        start = buffer.find(b"\x02", pos)
        if start < 0:
            return frames, b""
        end = buffer.find(b"\x03", start + 1)
        if end < 0:
            rest = buffer[start:]
            if len(rest) > MAX_FRAME_BYTES:
                return frames, b""
            return frames, rest
        frame = buffer[start : end + 1]
        restart = frame.rfind(b"\x02")
        if restart > 0:  # a new STX before ETX: the earlier frame was cut short
            frame = frame[restart:]
        if b"\x04" not in frame:
            frames.append(frame)
        pos = end + 1


def _int(frame: TicFrame, label: str) -> int | None:
    group = frame.groups.get(label)
    if group is None:
        return None
    digits = group.data.strip()
    if not digits.isdigit():
        raise TicError(f"TIC group {label} is not a number: {group.data!r}")
    return int(digits)


def to_measurement(frame: TicFrame) -> Measurement:
    """Map a decoded frame to the reading vocabulary."""
    values: dict[str, int] = {}
    if frame.mode == "standard" or "ADSC" in frame.groups:
        east = _int(frame, "EAST")
        if east is not None:
            values["e_imp_wh"] = east
        eait = _int(frame, "EAIT")
        if eait is not None:
            values["e_exp_wh"] = eait
        sinsts = _int(frame, "SINSTS")
        if sinsts is not None:
            values["va"] = sinsts
        for phase in ("1", "2", "3"):
            urms = _int(frame, f"URMS{phase}")
            if urms is not None:
                values[f"v_dv_l{phase}"] = urms * 10
            irms = _int(frame, f"IRMS{phase}")
            if irms is not None:
                values[f"i_ma_l{phase}"] = irms * 1000
        meter_id = frame.groups["ADSC"].data if "ADSC" in frame.groups else None
    else:
        indexes = [_int(frame, label) for label in _HISTORIQUE_INDEXES]
        present = [v for v in indexes if v is not None]
        if present:
            values["e_imp_wh"] = sum(present)
        papp = _int(frame, "PAPP")
        if papp is not None:
            values["va"] = papp
        iinst = _int(frame, "IINST")
        if iinst is not None:
            values["i_ma_l1"] = iinst * 1000
        for phase in ("1", "2", "3"):
            iinst_p = _int(frame, f"IINST{phase}")
            if iinst_p is not None:
                values[f"i_ma_l{phase}"] = iinst_p * 1000
        meter_id = frame.groups["ADCO"].data if "ADCO" in frame.groups else None
    if "v_dv_l1" in values:
        values["v_dv"] = values["v_dv_l1"]
    phase_currents = [values[k] for k in ("i_ma_l1", "i_ma_l2", "i_ma_l3") if k in values]
    if phase_currents:
        values["i_ma"] = sum(phase_currents)
    if "e_imp_wh" not in values:
        raise TicError("TIC frame without an energy index (EAST, BASE, HCHC/HCHP, BBR…)")
    prm = frame.groups.get("PRM")
    return Measurement(
        values=values,
        meter_id=meter_id,
        meter_point=prm.data.strip() if prm else None,
    )


def encode_group(label: str, data: str, mode: TicMode, horodatage: str | None = None) -> bytes:
    """One group with its checksum, LF and CR included (used by the simulator and tests)."""
    if mode == "standard":
        parts = [label, horodatage, data] if horodatage is not None else [label, data]
        covered = ("\t".join(parts) + "\t").encode("ascii")
        return b"\n" + covered + bytes([checksum(covered)]) + b"\r"
    covered = f"{label} {data}".encode("ascii")
    return b"\n" + covered + b" " + bytes([checksum(covered)]) + b"\r"


def encode_frame(groups: list[tuple[str, str] | tuple[str, str, str]], mode: TicMode) -> bytes:
    out = bytearray(b"\x02")
    for g in groups:
        if len(g) == 3:
            out += encode_group(g[0], g[2], mode, horodatage=g[1])
        else:
            out += encode_group(g[0], g[1], mode)
    out += b"\x03"
    return bytes(out)
