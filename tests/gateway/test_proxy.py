"""The Modbus proxy in process, against the SunSpec simulator: a failure while serving a
request costs that request an exception answer, never the local client's connection."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from gw_helpers import Procs
from pymodbus.client import ModbusTcpClient

from gateway.config import ProxyConfig
from gateway.drivers.base import DeviceError
from gateway.drivers.modbus_line import Endpoint, ModbusLine
from gateway.proxy import GATEWAY_PATH_UNAVAILABLE, GATEWAY_TARGET_FAILED, ModbusProxy


@pytest.fixture
def procs() -> Iterator[Procs]:
    p = Procs()
    yield p
    p.stop_all()


class Device:
    """What the runtime hands the proxy: the opened device, whose `.line` it forwards on."""

    def __init__(self, line: Any) -> None:
        self.line = line
        self.fail: BaseException | None = None

    def __call__(self) -> Any:
        if self.fail is not None:
            raise self.fail
        return SimpleNamespace(line=self.line)


def test_a_failure_answers_an_exception_and_keeps_the_client(tmp_path: Path, procs: Procs) -> None:
    port = procs.sim(tmp_path)
    line = ModbusLine(Endpoint("tcp", "127.0.0.1", port), timeout_s=2.0)
    device = Device(line)
    proxy = ModbusProxy(ProxyConfig("127.0.0.1", 0, "inverter", cache_age_s=0), device)
    proxy.start()
    client = ModbusTcpClient("127.0.0.1", port=proxy.address[1], timeout=3, retries=0)
    try:
        assert client.connect()
        ok = client.read_holding_registers(40000, count=2, device_id=1)
        assert ok.registers == [0x5375, 0x6E53]

        device.fail = RuntimeError("a bug while opening the device")
        failed = client.read_holding_registers(40000, count=2, device_id=1)
        assert failed.isError() and failed.exception_code == GATEWAY_TARGET_FAILED

        device.fail = DeviceError("cannot connect", kind="connection")
        down = client.read_holding_registers(40000, count=2, device_id=1)
        assert down.isError() and down.exception_code == GATEWAY_PATH_UNAVAILABLE

        device.fail = None  # the same connection goes on being served
        again = client.read_holding_registers(40000, count=2, device_id=1)
        assert again.registers == [0x5375, 0x6E53]
        assert proxy.stats()["failed"] == 2 and proxy.stats()["clients"] == 1
    finally:
        client.close()
        proxy.stop()
        line._close()
