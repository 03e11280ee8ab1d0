"""Device drivers: pure decoders (SunSpec, register profiles, TIC, P1) and thin I/O around them."""

from gateway.drivers.base import Device, DeviceError, Measurement
from gateway.drivers.factory import open_device
from gateway.drivers.spec import DeviceSpec

__all__ = ["Device", "DeviceError", "DeviceSpec", "Measurement", "open_device"]
