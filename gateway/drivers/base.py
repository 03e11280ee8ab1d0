"""What a device gives the gateway, whatever protocol it speaks.

Drivers implement the capabilities their device has (as evcc's small interfaces do);
the gateway runtime only asks for `read()`. Values are integers in the fixed units of
the reading format (docs/protocol.md): Wh, W, VA, 0.1 V, mA, mHz.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

# The measurement vocabulary of the signed reading (docs/protocol.md).
MEASUREMENT_NAMES = frozenset(
    {
        "e_imp_wh",  # cumulative imported energy, Wh
        "e_exp_wh",  # cumulative exported energy, Wh
        "e_prod_wh",  # cumulative produced energy (inverter), Wh
        "p_w",  # active power, W (positive = import for a meter, production for an inverter)
        "va",  # apparent power, VA
        "v_dv",  # voltage, 0.1 V (phase 1, or single phase)
        "i_ma",  # current, mA (total or single phase)
        "f_mhz",  # frequency, mHz
    }
)
# Per-phase variants: v_dv_l1..l3, i_ma_l1..l3, p_w_l1..l3 are also accepted names.


@dataclass(frozen=True, slots=True)
class Measurement:
    """One poll of one device, already in reading units."""

    values: dict[str, int]
    meter_id: str | None = None  # serial number / ADCO / ADSC / equipment id
    meter_point: str | None = None  # PRM (FR) or EAN (NL/BE) when the device tells it
    flags: tuple[str, ...] = field(default=())


class DeviceError(Exception):
    """A device could not be read this time (timeout, bad frame, exception response)."""

    kind = "error"  # a short class name for counters: timeout, checksum, exception, ...

    def __init__(self, message: str, *, kind: str | None = None) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind


@runtime_checkable
class Device(Protocol):
    """A configured device the gateway polls."""

    name: str

    def read(self) -> Measurement:
        """Poll once. Raises DeviceError when the device does not give a valid answer."""
        ...

    def close(self) -> None: ...
