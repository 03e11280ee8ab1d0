"""Serve a SunSpec register image laid out by pysunspec2 (used by the driver tests).

Usage: python sunspec_image_server.py PORT LAYOUT, LAYOUT one of: fronius-103, meter-203,
float-113, base-0.
"""

from __future__ import annotations

import asyncio
import struct
import sys

import sunspec2.device as device
from pymodbus.server import StartAsyncTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

COMMON = {"Mn": "Fronius", "Md": "Symo 8.2-3-M", "SN": "29384756", "Vr": "3.2.1", "DA": 1}
LAYOUTS: dict[str, tuple[int, list[tuple[int, dict[str, object]]]]] = {
    "fronius-103": (40000, [(1, COMMON), (103, {
        "A": 1234, "A_SF": -2, "W": 5432, "W_SF": 0, "WH": 123456789, "WH_SF": 0,
        "Hz": 5001, "Hz_SF": -2, "PhVphA": 2301, "V_SF": -1, "St": 4})]),
    "meter-203": (40000, [(1, {**COMMON, "Mn": "Carlo Gavazzi", "SN": "MTR-77"}), (203, {
        "W": -1234, "W_SF": 0, "TotWhImp": 4567890, "TotWhExp": 1234567, "TotWh_SF": 0,
        "Hz": 4998, "Hz_SF": -2, "PhVphA": 2312, "PhV": 2312, "V_SF": -1,
        "A": -531, "A_SF": -2})]),
    "float-113": (40000, [(1, {**COMMON, "Mn": "SMA"}), (113, {
        "W": 2500.0, "WH": 9876543.0, "Hz": 50.02, "PhVphA": 231.4, "A": 10.82, "St": 2})]),
    "base-0": (0, [(1, COMMON), (103, {
        "W": 1000, "W_SF": 1, "WH": 777, "WH_SF": 3, "Hz": 500, "Hz_SF": -1,
        "PhVphA": 230, "V_SF": 0, "A": 43, "A_SF": -1, "St": 4})]),
}


def layout(name: str) -> tuple[int, list[int]]:
    base, models = LAYOUTS[name]
    mb = b"SunS"
    for mid, values in models:
        m = device.Model(mid)
        for k, v in values.items():
            getattr(m, k).value = v
        mb += m.get_mb()
    mb += b"\xff\xff\x00\x00"
    return base, list(struct.unpack(f">{len(mb) // 2}H", mb))


async def main(port: int, name: str) -> None:
    base, regs = layout(name)
    dev = SimDevice(1, simdata=[SimData(base, values=regs, datatype=DataType.REGISTERS)])
    await StartAsyncTcpServer(context=dev, address=("127.0.0.1", port))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
