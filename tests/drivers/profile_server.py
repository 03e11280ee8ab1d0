"""Serve a Huawei SUN2000-like map (unit 1, holding) and an Eastron SDM630-like map (unit 2,
input registers, float32) on one Modbus TCP endpoint, for the profile tests.

Values follow the vendors' public register maps; see the profiles' comments.
Usage: python profile_server.py PORT
"""

from __future__ import annotations

import asyncio
import sys

from pymodbus.server import StartAsyncTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice


def huawei() -> SimDevice:
    return SimDevice(1, simdata=[
        SimData(30000, values="SUN2000-6KTL-M1".ljust(30), datatype=DataType.STRING),
        SimData(30015, values="HV2150123456".ljust(20), datatype=DataType.STRING),
        SimData(32069, values=[2318, 2322, 2309], datatype=DataType.REGISTERS),
        SimData(32072, values=[8123, 8101, 8140], datatype=DataType.INT32),
        SimData(32080, values=5432, datatype=DataType.INT32),
        SimData(32085, values=5001, datatype=DataType.REGISTERS),
        SimData(32106, values=1234567, datatype=DataType.UINT32),  # 12345.67 kWh
    ])


def sdm630() -> SimDevice:
    ir = [
        SimData(0x0000, values=231.5, datatype=DataType.FLOAT32),
        SimData(0x0006, values=4.25, datatype=DataType.FLOAT32),
        SimData(0x0034, values=-812.0, datatype=DataType.FLOAT32),
        SimData(0x0046, values=49.97, datatype=DataType.FLOAT32),
        SimData(0x0048, values=1234.5, datatype=DataType.FLOAT32),
        SimData(0x004A, values=321.25, datatype=DataType.FLOAT32),
    ]
    bits = [SimData(0, values=False, datatype=DataType.BITS)]
    return SimDevice(2, simdata=(bits, list(bits), [SimData(0, values=0, datatype=DataType.REGISTERS)], ir))


async def main(port: int) -> None:
    await StartAsyncTcpServer(context=[huawei(), sdm630()], address=("127.0.0.1", port))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
