"""Build a `Device` from its configuration entry."""

from __future__ import annotations

from gateway.drivers.base import Device
from gateway.drivers.modbus_line import Endpoint, ModbusLine
from gateway.drivers.spec import DeviceSpec

# Serial meters talk at their own pace: never wait less than one frame period for a frame.
_MIN_FRAME_WAIT_S = {"historique": 3.0, "standard": 2.5, "p1-5": 2.5, "p1-old": 12.0}


def open_device(spec: DeviceSpec) -> Device:
    """A ready-to-poll device. Modbus devices on the same url/port share one line.

    Opening is cheap and does no I/O for Modbus devices (discovery happens on the first
    read, so a device that is off at start-up is retried like any failed read); serial
    ports are opened on the first read too.
    """
    if spec.driver in ("sunspec", "profile"):
        endpoint = Endpoint.parse(spec.url, spec.port, spec.baudrate)
        line = ModbusLine.shared(endpoint, spec.timeout_s)
        if spec.driver == "sunspec":
            from gateway.drivers.sunspec_device import SunSpecDevice

            return SunSpecDevice(spec.name, line, spec.unit, spec.role)
        from gateway.drivers.profile import ProfileDevice, load_profile

        if not spec.profile:
            line.release()
            raise ValueError(f"device {spec.name}: driver 'profile' needs a profile name")
        try:
            profile = load_profile(spec.profile)
        except Exception:
            line.release()
            raise
        return ProfileDevice(spec.name, line, spec.unit, profile)
    if not spec.port:
        raise ValueError(f"device {spec.name}: driver {spec.driver!r} needs a serial port")
    from gateway.drivers.serial_device import P1Device, TicDevice

    if spec.driver == "tic":
        mode = spec.mode or "historique"
        wait = max(spec.timeout_s, _MIN_FRAME_WAIT_S.get(mode, 3.0))
        return TicDevice(spec.name, spec.port, mode, spec.baudrate, wait)
    if spec.driver == "p1":
        version = spec.mode or "5"
        floor = _MIN_FRAME_WAIT_S["p1-5" if version == "5" else "p1-old"]
        return P1Device(spec.name, spec.port, version, spec.baudrate, max(spec.timeout_s, floor))
    raise ValueError(f"device {spec.name}: unknown driver {spec.driver!r}")
