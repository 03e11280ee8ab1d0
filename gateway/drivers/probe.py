"""What is on the other end of a wire: used by `quartier meter probe` at installation."""

from __future__ import annotations

import time
from typing import Any

from gateway.drivers import p1, tic
from gateway.drivers.base import DeviceError, Measurement
from gateway.drivers.modbus_line import Endpoint, ModbusLine
from gateway.drivers.serial_device import LineSettings, open_port, p1_settings, tic_settings
from gateway.drivers.sunspec_device import SunSpecDevice


def measurement_json(m: Measurement) -> dict[str, Any]:
    return dict(sorted(m.values.items()))


def probe_modbus(
    url: str, unit: int, timeout_s: float = 3.0, role: str = "production"
) -> dict[str, Any]:
    """Discover a SunSpec map and read it once. Raises DeviceError with what went wrong."""
    line = ModbusLine.shared(Endpoint.parse(url, None), timeout_s)
    device = SunSpecDevice("probe", line, unit, role)
    try:
        device.discover()
        measurement = device.read()
        return {
            "url": url,
            "unit": unit,
            "protocol": "sunspec",
            **device.describe(),
            "target_model": device.target.id if device.target else None,
            "m": measurement_json(measurement),
            "flags": list(measurement.flags),
        }
    finally:
        device.close()


# The order in which line settings are tried: P1 5 talks every second, Linky historique is
# the factory default, standard is opt-in, DSMR 2.2/3 is rare now.
SERIAL_ATTEMPTS: tuple[tuple[str, str, LineSettings], ...] = (
    ("p1", "5", p1_settings("5")),
    ("tic", "historique", tic_settings("historique")),
    ("tic", "standard", tic_settings("standard")),
    ("p1", "2.2", p1_settings("2.2")),
)


def _try_decode(data: bytes, protocol: str, variant: str) -> dict[str, Any] | None:
    """The first frame in `data` of the expected protocol that decodes cleanly.

    Only the protocol the line settings are for is accepted: on real hardware a meter read
    at the wrong speed gives garbage, and the settings found are what the installer needs.
    """
    if protocol == "tic":
        frames, _ = tic.split_frames(bytes(b & 0x7F for b in data))
        for raw in frames:
            frame = tic.decode_frame(raw)
            if frame.ok and frame.mode == variant:
                try:
                    m = frame.measurement()
                except DeviceError:
                    continue
                return {
                    "protocol": "tic",
                    "mode": frame.mode,
                    "meter_point": m.meter_point,
                    "serial": m.meter_id,
                    "m": measurement_json(m),
                }
        return None
    telegrams, _ = p1.split_telegrams(data)
    for raw in telegrams:
        tg = p1.decode_telegram(raw)
        if tg.ok and tg.has_crc == (variant != "2.2"):
            try:
                m = tg.measurement()
            except DeviceError:
                continue
            return {
                "protocol": "p1",
                "mode": tg.header,
                "meter_point": None,
                "serial": m.meter_id,
                "m": measurement_json(m),
            }
    return None


def probe_serial(port: str, per_attempt_s: float = 3.5) -> dict[str, Any]:
    """Try each line setting in turn until a frame decodes. Raises DeviceError if none does."""
    tried = []
    for protocol, variant, settings in SERIAL_ATTEMPTS:
        deadline = time.monotonic() + per_attempt_s
        ser = open_port(port, settings)
        data = b""
        try:
            while time.monotonic() < deadline:
                data += ser.read(max(ser.in_waiting, 1))
                found = _try_decode(data, protocol, variant)
                if found is not None:
                    return {
                        "port": port,
                        "line": repr(settings),
                        "models": [],
                        "manufacturer": None,
                        **found,
                    }
        except OSError as exc:
            raise DeviceError(f"{port}: {exc}", kind="connection") from None
        finally:
            ser.close()
        tried.append(f"{protocol} {variant} at {settings}")
    raise DeviceError(
        f"{port}: no TIC or P1 frame decoded (tried {'; '.join(tried)}); check the wiring "
        "and that the meter's customer output is enabled",
        kind="timeout",
    )
