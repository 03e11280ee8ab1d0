"""A SunSpec inverter or meter on a Modbus line: discover once, then one request per poll.

Every poll decodes each point with the scale factor of the same response; scale factors
are never kept from one read to the next. A device that lists the integer model and
answers the float one (or the reverse) is read as what it answers. Vendor quirks that
match its common model (`quirk.py`) are applied while decoding.
"""

from __future__ import annotations

from gateway.drivers import sunspec
from gateway.drivers.base import DeviceError, Measurement
from gateway.drivers.modbus_line import ModbusLine
from gateway.drivers.quirk import corrections_for
from gateway.drivers.sunspec import Correction, Identity, ModelRef, SunSpecError

_INVERTERS = sunspec.INVERTER_INT + sunspec.INVERTER_FLOAT
_METERS = sunspec.METER_INT + sunspec.METER_FLOAT
# Values that make a poll useful: without any of them the model answered is an empty shell.
_USEFUL = ("p_w", "e_prod_wh", "e_imp_wh", "e_exp_wh")


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
        self.corrections: dict[str, Correction] = {}
        self.quirks: list[str] = []
        self.fallbacks = 0  # times the integer/float twin was read instead of the listed model

    def _read(self, address: int, count: int) -> list[int]:
        return self.line.read_holding(address, count, self.unit)

    def discover(self) -> None:
        """Find the marker, walk the chain, read the common model once."""
        last: DeviceError | None = None
        for base in sunspec.BASE_ADDRESSES:
            try:
                regs = self._read(base, 2)
            except DeviceError as exc:
                if exc.kind in ("timeout", "connection", "checksum", "frame"):
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
                self._set_target(found)
                break
        else:
            ids = [m.id for m in self.models]
            raise SunSpecError(
                f"{self.name}: SunSpec map has models {ids}, none of them an inverter "
                "(101-103, 111-113) or a meter (201-204, 211-214)",
                kind="sunspec",
            )

    def _set_target(self, model: ModelRef) -> None:
        self.target = model
        self.corrections, self.quirks = corrections_for(self.identity, model.id)

    def _listed_twin(self, model: ModelRef) -> ModelRef | None:
        twin = sunspec.FLOAT_TWIN.get(model.id)
        return next((m for m in self.models if m.id == twin), None)

    def _read_model(self, model: ModelRef) -> tuple[int, list[sunspec.Block]]:
        """One poll of a model: (the ID the device answered with, its responses)."""
        blocks: list[sunspec.Block] = []
        for address, count in sunspec.read_plan(model):
            blocks.append((address - model.address, self._read(address, count)))
        first_start, first = blocks[0]
        return (first[0] if first_start == 0 and first else model.id), blocks

    def read_values(self) -> dict[str, int]:
        return self._read_values(fallback=True)

    def _read_values(self, fallback: bool) -> dict[str, int]:
        if self.target is None:
            self.discover()
        assert self.target is not None
        model = self.target
        try:
            answered, blocks = self._read_model(model)
        except DeviceError as exc:
            twin = self._listed_twin(model)
            if exc.kind != "exception" or twin is None or not fallback:
                raise
            # lists both variants but refuses this one: the other is the one it implements
            self.fallbacks += 1
            self._set_target(twin)
            return self._read_values(fallback=False)
        if answered != model.id:
            twin_id = sunspec.FLOAT_TWIN.get(model.id)
            if answered != twin_id:
                self.target = None  # the map moved (firmware update): rediscover next poll
                raise SunSpecError(
                    f"{self.name}: expected model {model.id} at {model.address}, found {answered}",
                    kind="sunspec",
                )
            # lists one variant, answers the other: read it as what it is, with its length
            self.fallbacks += 1
            length = blocks[0][1][1] if len(blocks[0][1]) > 1 else model.length
            self._set_target(ModelRef(answered, model.address, length))
            if length != model.length:
                if not fallback:
                    raise SunSpecError(
                        f"{self.name}: model {model.id} at {model.address} keeps changing",
                        kind="sunspec",
                    )
                return self._read_values(fallback=False)
            model = self.target
        values = sunspec.decode_blocks(model.id, blocks, self.corrections)
        if fallback and not any(k in values for k in _USEFUL):
            twin = self._listed_twin(model)
            if twin is not None:
                # both variants listed, this one left "not implemented": use the other
                self.fallbacks += 1
                self._set_target(twin)
                answered, blocks = self._read_model(twin)
                values = sunspec.decode_blocks(twin.id, blocks, self.corrections)
        return values

    def read(self) -> Measurement:
        return sunspec.to_measurement(self.read_values(), self.identity)

    def counters(self) -> dict[str, int]:
        """This device's error counts by class on its line (its unit id only)."""
        return {**self.line.counters(self.unit), "fallbacks": self.fallbacks}

    def describe(self) -> dict[str, object]:
        ident = self.identity
        return {
            "base": self.base,
            "models": [m.id for m in self.models],
            "manufacturer": ident.manufacturer if ident else None,
            "model": ident.model if ident else None,
            "version": ident.version if ident else None,
            "serial": ident.serial if ident else None,
            "quirks": list(self.quirks),
        }

    def close(self) -> None:
        self.line.release()
