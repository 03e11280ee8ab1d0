"""`quartier meter …`: decode captures and probe devices, for installers and tests."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

meter = typer.Typer(help="Decode meter captures and probe devices.", no_args_is_help=True)


def _frame_json(
    ok: bool, meter_id: str | None, meter_point: str | None, m: dict[str, int], errors: list[str]
) -> str:
    return json.dumps(
        {"ok": ok, "meter_id": meter_id, "meter_point": meter_point, "m": m, "errors": errors},
        sort_keys=False,
    )


@meter.command("decode")
def decode(
    file: Path = typer.Argument(..., help="capture file (raw bytes from the meter's port)"),
    format: str = typer.Option(..., "--format", help="tic or p1"),
) -> None:
    """Decode every frame of a capture: one JSON object per frame; exit 0 only if all are ok."""
    from gateway.drivers import p1, tic
    from gateway.drivers.base import DeviceError

    if format not in ("tic", "p1"):
        print(f"unknown format {format!r}: use tic or p1", file=sys.stderr)
        raise typer.Exit(2)
    try:
        data = file.read_bytes()
    except OSError as exc:
        print(f"cannot read {file}: {exc.strerror}", file=sys.stderr)
        raise typer.Exit(2) from None
    all_ok = True
    count = 0
    if format == "tic":
        frames, _ = tic.split_frames(bytes(b & 0x7F for b in data))
        decoded = [tic.decode_frame(f) for f in frames]
    else:
        frames, _ = p1.split_telegrams(data)
        decoded = [p1.decode_telegram(f) for f in frames]  # type: ignore[misc]
    for frame in decoded:
        count += 1
        errors = [str(e) for e in frame.errors]
        values: dict[str, int] = {}
        meter_id = meter_point = None
        try:
            from gateway.drivers.p1 import P1Telegram

            if isinstance(frame, P1Telegram):
                m = p1.to_measurement(frame)
            else:
                m = tic.to_measurement(frame)
            values = dict(sorted(m.values.items()))
            meter_id, meter_point = m.meter_id, m.meter_point
        except DeviceError as exc:
            if str(exc) not in errors:
                errors.append(str(exc))
        ok = not errors
        all_ok = all_ok and ok
        print(_frame_json(ok, meter_id, meter_point, values, errors))
    if count == 0:
        print(_frame_json(False, None, None, {}, [f"no {format} frame found in {file}"]))
        raise typer.Exit(1)
    raise typer.Exit(0 if all_ok else 1)


@meter.command("probe")
def probe(
    modbus: str = typer.Option(None, "--modbus", help="tcp://HOST:PORT of a SunSpec device"),
    unit: int = typer.Option(1, "--unit", help="Modbus unit id"),
    serial: str = typer.Option(None, "--serial", help="serial device of a TIC or P1 meter"),
    timeout: float = typer.Option(3.0, "--timeout", help="seconds per request or attempt"),
) -> None:
    """Find what is on a wire and read it once; prints JSON (last line)."""
    from gateway.drivers.base import DeviceError
    from gateway.drivers.probe import probe_modbus, probe_serial

    if bool(modbus) == bool(serial):
        print("give exactly one of --modbus tcp://HOST:PORT or --serial DEVICE", file=sys.stderr)
        raise typer.Exit(2)
    try:
        if modbus:
            result = probe_modbus(modbus, unit, timeout)
        else:
            result = probe_serial(serial, max(timeout, 4.0))
    except (DeviceError, ValueError) as exc:
        print(f"probe failed: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    print(json.dumps(result))


def register(app: typer.Typer) -> None:
    app.add_typer(meter, name="meter")
