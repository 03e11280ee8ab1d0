"""What the configuration says about one device, parsed once at the edge.

The gateway's config loader builds a `DeviceSpec` per `[[device]]` entry; drivers take
nothing else. Several specs with the same `url` (TCP) or `port` (RTU line) and different
`unit` share one connection and one lock (see `gateway.drivers.modbus_line`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DriverName = Literal["sunspec", "profile", "tic", "p1"]
Role = Literal["production", "grid"]


@dataclass(frozen=True)
class DeviceSpec:
    """One configured device.

    - `driver`: "sunspec" and "profile" speak Modbus (TCP when `url` is set, e.g.
      "tcp://192.168.1.20:502"; RTU when `port` is set, e.g. "/dev/ttyUSB0");
      "tic" and "p1" read a meter's serial output from `port`.
    - `unit`: Modbus device id (ignored by tic/p1).
    - `profile`: register-map profile name for driver "profile" (a TOML file shipped in
      gateway/drivers/profiles/, or a path).
    - `baudrate`: line speed override (defaults: RTU 9600, TIC historique 1200,
      TIC standard 9600, P1 115200).
    - `mode`: "historique" or "standard" for tic ("auto" tries both); P1 version
      ("5", "4", "2.2") for p1, default "5".
    - `timeout_s`: per request (Modbus) or per frame (serial) time limit.
    """

    name: str
    driver: DriverName
    url: str | None
    port: str | None
    unit: int
    role: Role
    profile: str | None = None
    baudrate: int | None = None
    mode: str | None = None
    timeout_s: float = 2.0
