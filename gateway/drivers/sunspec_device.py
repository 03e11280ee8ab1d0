"""A SunSpec inverter or meter on a Modbus line: discover once, then one request per poll."""

from __future__ import annotations

from gateway.drivers import sunspec
from gateway.drivers.base import DeviceError, Measurement
from gateway.drivers.modbus_line import ModbusLine
from gateway.drivers.sunspec import Identity, ModelRef, SunSpecError

_INVERTERS = sunspec.INVERTER_INT + sunspec.INVERTER_FLOAT
_METERS = sunspec.METER_INT + sunspec.METER_FLOAT


class SunSpecDevice:
    """Implements `Device`. `role` picks the inverter or the meter model when a map has both."""

    def __init__(self, name: str, line: ModbusLine, unit: int, role: str = "production") -> None:
        self.name = name
        self.line = line
        self.unit = unit
        self.role = role
        self.base: int | None = None
        self.models: list[ModelRef] = []
        self.identity: Identity | None = None
        self.target: ModelRef | None = None

    def _read(self, address: int, count: int) -> list[int]:
        return self.line.read_holding(address, count, self.unit)

    def discover(self) -> None:
        """Find the marker, walk the chain, read the common model once."""
        last: DeviceError | None = None
        for base in sunspec.BASE_ADDRESSES:
            try:
                regs = self._read(base, 2)
            except DeviceError as exc:
                if exc.kind in ("timeout", "connection"):
                    raise
                last = exc
                continue
            if sunspec.is_marker(regs):
                self.base = base
                break
        else:
            raise SunSpecError(
                f"{self.name}: no SunSpec marker 'SunS' at {', '.join(map(str, sunspec.BASE_ADDRESSES))}"
                + (f" (last error: {last})" if last else ""),
                kind="sunspec",
            )
        self.models = sunspec.walk(self._read, self.base)
        common = next((m for m in self.models if m.id == 1), None)
        if common is not None:
            regs = self._read(common.address, min(common.length + 2, sunspec.MAX_READ))
            self.identity = sunspec.decode_common(regs)
        wanted = _INVERTERS + _METERS if self.role == "production" else _METERS + _INVERTERS
        for model_id in wanted:
            found = next((m for m in self.models if m.id == model_id), None)
            if found is not None:
                self.target = found
                break
        else:
            ids = [m.id for m in self.models]
            raise SunSpecError(
                f"{self.name}: SunSpec map has models {ids}, none of them an inverter "
                "(101-103, 111-113) or a meter (201-204, 211-214)",
                kind="sunspec",
            )

    def read_values(self) -> dict[str, int]:
        if self.target is None:
            self.discover()
        assert self.target is not None
        model = self.target
        plan = sunspec.read_plan(model)
        regs: list[int] = []
        for address, count in plan:
            regs += self._read(address, count)
        if plan[0][0] != model.address:
            regs = [model.id, model.length, *regs]
        model_id = regs[0]
        if model_id != model.id:
            twin = sunspec.FLOAT_TWIN.get(model.id)
            if model_id != twin:
                self.target = None  # the map moved (firmware update): rediscover next poll
                raise SunSpecError(
                    f"{self.name}: expected model {model.id} at {model.address}, found {model_id}",
                    kind="sunspec",
                )
        return sunspec.decode_model(model_id, regs)

    def read(self) -> Measurement:
        return sunspec.to_measurement(self.read_values(), self.identity)

    def describe(self) -> dict[str, object]:
        ident = self.identity
        return {
            "base": self.base,
            "models": [m.id for m in self.models],
            "manufacturer": ident.manufacturer if ident else None,
            "model": ident.model if ident else None,
            "version": ident.version if ident else None,
            "serial": ident.serial if ident else None,
        }

    def close(self) -> None:
        self.line.release()
