"""The simulated devices' Modbus server (pymodbus 3.16, pinned).

This is the only module that touches pymodbus's server side. It uses `SimData`/`SimDevice`
(the datastore that replaces the deprecated `ModbusServerContext`/`ModbusDeviceContext`
in pymodbus 4) with an `action` hook that refreshes the register image from the simulated
plant on every request, and a request handler subclass for what pymodbus does not
simulate: a single-client device, silence at night, dropped or corrupted answers.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType, SimData, SimDevice

from firmware_sim import sunspec_map
from firmware_sim.faults import FaultDice, Faults
from firmware_sim.plant import Plant, SimClock
from firmware_sim.sunspec_map import Electrical

log = logging.getLogger("firmware_sim.modbus")


@dataclass
class SunSpecSim:
    """One simulated SunSpec device: a plant, a clock, its identity, its faults."""

    plant: Plant
    clock: SimClock
    unit: int = 1
    faults: Faults = field(default_factory=Faults)
    seed: int = 0
    requests: int = 0
    refused_clients: int = 0
    dropped_connections: int = 0
    # what the last answer encoded, in reading units: tests compare every decoded read to it
    last_state: Electrical | None = None
    last_image: list[int] = field(default_factory=list)
    # faults actually injected, by class: tests check the reader's counters against them
    injected: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.dice = FaultDice(self.faults, self.seed)
        self.sf_rng = random.Random(self.seed)
        kind = self.plant.kind
        self.common = sunspec_map.common_model(
            "Quartier",
            "SimInverter 6000" if kind == "inverter" else "SimMeter 3P",
            "0.1.0",
            f"SIM{'I' if kind == 'inverter' else 'M'}{self.seed:05d}",
            self.unit,
        )

    def inject(self, kind: str) -> None:
        self.injected[kind] = self.injected.get(kind, 0) + 1

    def expected(self) -> dict[str, int]:
        """What the last answer encodes, in reading units (every value the simulator
        encodes exactly): a reader that decodes the answer must find these."""
        s = self.last_state
        if s is None:
            return {}
        out = {"p_w": s.p_w, "v_dv": s.v_dv, "f_mhz": s.f_mhz}
        if self.plant.kind == "inverter":
            out["e_prod_wh"] = s.e_wh
        else:
            out["e_imp_wh"], out["e_exp_wh"] = s.e_wh, s.e_exp_wh
        return out

    def image(self) -> list[int]:
        state = self.plant.state(self.clock.now(), self.clock.elapsed_s())
        self.last_state = state
        rng = self.sf_rng if self.faults.sf_change else None
        if self.plant.kind == "inverter":
            model = sunspec_map.inverter_model(state, rng)
        else:
            model = sunspec_map.meter_model(state, rng)
        regs = sunspec_map.image(self.plant.kind, self.common, model)
        if self.dice.roll(self.faults.glitch_rate):
            # a register of the device model flips to garbage (a firmware or bus glitch)
            off = sunspec_map.model_offset(self.plant.kind) + 2 + self.dice.rng.randrange(model[1])
            regs[off] = self.dice.rng.randrange(0x10000)
            self.inject("glitch")
        self.last_image = regs
        return regs

    def silent_now(self) -> bool:
        """An inverter asleep at night does not answer at all."""
        return (
            self.faults.sleep_at_night
            and self.plant.kind == "inverter"
            and self.plant.is_night(self.clock.now())
        )

    async def action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        self.requests += 1
        if set_values is not None:
            return ExcCodes.ILLEGAL_FUNCTION  # the simulated map is read-only
        if self.dice.roll(self.faults.exception_rate):
            self.inject("exception")
            return ExcCodes.DEVICE_BUSY
        regs = self.image()
        offset = sunspec_map.BASE - start_address
        registers[offset : offset + len(regs)] = regs
        return None

    def sim_device(self) -> SimDevice:
        size = len(self.image())
        # a little room after the end marker: scanners read the next header there
        data = SimData(sunspec_map.BASE, values=[0] * (size + 8), datatype=DataType.REGISTERS)
        return SimDevice(self.unit, simdata=[data], action=self.action)


class _Handler(ServerRequestHandler):
    """One client connection, with the simulator's connection-level faults."""

    def __init__(self, owner: Any, *args: Any) -> None:
        super().__init__(owner, *args)
        self.sim: SunSpecSim = owner.sim
        self.accepted = True
        self._fault: str | None = None
        self._send = self.low_level_send
        self.low_level_send = self._faulty_send

    def callback_connected(self) -> None:
        limit = self.sim.faults.max_clients
        others = [
            c
            for c in self.server.active_connections.values()
            if c is not self and getattr(c, "accepted", False)
        ]
        if limit and len(others) >= limit:
            # like a single-client inverter: the second client is dropped, never answered
            self.accepted = False
            self.sim.refused_clients += 1
            log.info(
                "refused a client: already %d connected (--max-clients %d)", len(others), limit
            )
            self.close()
            return
        super().callback_connected()

    def callback_data(self, data: bytes, addr: tuple | None = None) -> int:
        if not self.accepted:
            return len(data)
        return super().callback_data(data, addr)

    async def handle_request(self) -> None:
        sim, dice = self.sim, self.sim.dice
        if sim.silent_now() or dice.roll(sim.faults.timeout_rate):
            sim.inject("timeout")
            self.last_pdu = None
            return
        if dice.roll(sim.faults.drop_rate):
            self._fault = "drop"
            sim.inject("frame")
        elif dice.roll(sim.faults.bad_checksum_rate):
            self._fault = "checksum"
            sim.inject("checksum")
        await super().handle_request()

    def _faulty_send(self, data: bytes, addr: tuple | None = None) -> None:
        fault, self._fault = self._fault, None
        if fault == "drop":
            data = self.sim.dice.drop_bytes(data)
        elif fault == "checksum" and len(data) > 6:
            out = bytearray(data)
            if self.comm_params.comm_type is not None and str(self.comm_params.comm_type).endswith(
                "SERIAL"
            ):
                out[-1] ^= 0xFF  # RTU: a wrong CRC
            else:
                out[5] ^= 0x40  # TCP has no CRC: a wrong MBAP length makes the frame invalid
            data = bytes(out)
        self._send(data, addr=addr)


class SimTcpServer(ModbusTcpServer):
    def __init__(self, sim: SunSpecSim, host: str, port: int) -> None:
        self.sim = sim
        super().__init__(sim.sim_device(), address=(host, port))

    def callback_new_connection(self) -> _Handler:
        return _Handler(self, self.trace_packet, self.trace_pdu, self.trace_connect)


def drop_connections(server: ModbusTcpServer, sim: SunSpecSim) -> int:
    """Close every client connection, as an inverter rebooting after a firmware update does."""
    handlers = list(server.active_connections.values())
    for handler in handlers:
        handler.close()
    sim.dropped_connections += len(handlers)
    if handlers:
        log.info("dropped %d client connection(s)", len(handlers))
    return len(handlers)


async def _drop_every(server: ModbusTcpServer, sim: SunSpecSim, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        drop_connections(server, sim)


async def serve_tcp(
    sim: SunSpecSim,
    host: str,
    port: int,
    on_ready: Callable[[], None] | None = None,
    drop_every_s: float | None = None,
) -> None:
    server = SimTcpServer(sim, host, port)
    await server.serve_forever(background=True)
    if on_ready is not None:
        on_ready()
    dropper = None
    if drop_every_s:
        dropper = asyncio.create_task(_drop_every(server, sim, drop_every_s))
    try:
        await server.serving
    finally:
        if dropper is not None:
            dropper.cancel()
        await server.shutdown()
