"""`quartier sim …`: simulated inverters and meters, real protocol peers for tests and demos."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import typer

sim = typer.Typer(
    help="Simulated SunSpec inverters/meters and TIC/P1 meters.", no_args_is_help=True
)


def _start(value: str | None) -> datetime:
    if not value:
        # Under the demo, simulators and gateways share one simulated clock
        # (QUARTIER_SIM_CLOCK): start from its "now" so both agree on the time of day.
        from quartier.clock import from_environment

        return datetime.fromtimestamp(from_environment().now_ms() / 1000, UTC)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        print(
            f"--start must be an ISO date-time, e.g. 2024-06-21T12:00:00+00:00, not {value!r}",
            file=sys.stderr,
        )
        raise typer.Exit(2) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _faults(
    timeout_rate: float,
    drop_rate: float,
    bad_checksum_rate: float,
    glitch_rate: float,
    exception_rate: float,
    counter_reset_after: float | None,
    freeze_after: float | None,
    sleep_at_night: bool,
    sf_change: bool,
    max_clients: int,
) -> object:
    from firmware_sim.faults import Faults

    for name, rate in (
        ("timeout", timeout_rate),
        ("drop", drop_rate),
        ("bad-checksum", bad_checksum_rate),
        ("glitch", glitch_rate),
        ("exception", exception_rate),
    ):
        if not 0 <= rate <= 1:
            print(f"--{name}-rate must be between 0 and 1, not {rate}", file=sys.stderr)
            raise typer.Exit(2)
    return Faults(
        timeout_rate=timeout_rate,
        drop_rate=drop_rate,
        bad_checksum_rate=bad_checksum_rate,
        glitch_rate=glitch_rate,
        exception_rate=exception_rate,
        counter_reset_after_s=counter_reset_after,
        freeze_after_s=freeze_after,
        sleep_at_night=sleep_at_night,
        sf_change=sf_change,
        max_clients=max_clients,
    )


# Fault options shared by every simulator (typer needs them spelled out per command).
TIMEOUT = typer.Option(0.0, "--timeout-rate", help="share of requests/frames left unanswered")
DROP = typer.Option(0.0, "--drop-rate", help="share of answers/frames with bytes dropped")
BADSUM = typer.Option(0.0, "--bad-checksum-rate", help="share with a corrupted checksum/CRC")
GLITCH = typer.Option(0.0, "--glitch-rate", help="share with one value replaced by garbage")
EXC = typer.Option(0.0, "--exception-rate", help="share of Modbus exception answers")
RESET = typer.Option(None, "--counter-reset-after", help="simulated s until counters restart at 0")
FREEZE = typer.Option(None, "--freeze-after", help="simulated s until values freeze")
SEED = typer.Option(0, "--seed", help="seed for clouds, load and faults")
SPEED = typer.Option(1.0, "--speed", help="simulated seconds per real second")
START = typer.Option(None, "--start", help="simulated start time (ISO), default now")


@sim.command("sunspec")
def sunspec(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(1502, "--port"),
    device: str = typer.Option(
        "inverter", "--device", help="inverter (models 1+103) or meter (1+203)"
    ),
    unit: int = typer.Option(1, "--unit"),
    seed: int = SEED,
    speed: float = SPEED,
    start: str = START,
    peak_w: int = typer.Option(
        None, "--peak-w", help="PV peak power (inverter default 6000, meter 0)"
    ),
    latitude: float = typer.Option(48.85, "--latitude"),
    longitude: float = typer.Option(2.35, "--longitude"),
    max_clients: int = typer.Option(
        0, "--max-clients", help="refuse clients beyond this many (0 = no limit)"
    ),
    sleep_at_night: bool = typer.Option(
        False, "--sleep-at-night", help="inverter silent while the sun is down"
    ),
    sf_change: bool = typer.Option(
        False, "--sf-change", help="scale factors change encoding between requests"
    ),
    drop_every: float = typer.Option(
        None, "--drop-connection-every", help="TCP: close every client connection each S seconds"
    ),
    rtu: bool = typer.Option(
        False, "--rtu", help="serve Modbus RTU on a new pty (its path is the first stdout line)"
    ),
    pty: bool = typer.Option(True, "--pty", help="with --rtu: the line is a pseudo-terminal"),
    units: str = typer.Option(
        None, "--units", help="with --rtu: unit ids on the line, e.g. 1,2 (default: --unit)"
    ),
    baudrate: int = typer.Option(9600, "--baudrate", help="with --rtu: line speed"),
    timeout_rate: float = TIMEOUT,
    drop_rate: float = DROP,
    bad_checksum_rate: float = BADSUM,
    glitch_rate: float = GLITCH,
    exception_rate: float = EXC,
    counter_reset_after: float = RESET,
    freeze_after: float = FREEZE,
) -> None:
    """Serve a SunSpec map over Modbus TCP until interrupted."""
    import asyncio
    import logging

    from firmware_sim.modbus_server import SunSpecSim, serve_tcp
    from firmware_sim.plant import Plant, SimClock

    try:
        unit_ids = [int(u) for u in units.split(",")] if units else [unit]
    except ValueError:
        print(f"--units must be unit ids separated by commas, e.g. 1,2, not {units!r}",
              file=sys.stderr)
        raise typer.Exit(2) from None
    if any(not 1 <= u <= 247 for u in unit_ids) or len(set(unit_ids)) != len(unit_ids):
        print(f"--units must be distinct ids from 1 to 247, not {units!r}", file=sys.stderr)
        raise typer.Exit(2)
    kinds = device.split(",")
    if len(kinds) == 1:
        kinds = kinds * len(unit_ids)
    if len(kinds) != len(unit_ids) or any(k not in ("inverter", "meter") for k in kinds):
        print(f"--device must be inverter or meter (or one per unit, e.g. inverter,meter), "
              f"not {device!r}", file=sys.stderr)
        raise typer.Exit(2)
    if len(unit_ids) > 1 and not rtu:
        print("several --units share a line: add --rtu", file=sys.stderr)
        raise typer.Exit(2)
    if rtu and not pty:
        print("--rtu serves on a pty only (--pty)", file=sys.stderr)
        raise typer.Exit(2)
    faults = _faults(
        timeout_rate,
        drop_rate,
        bad_checksum_rate,
        glitch_rate,
        exception_rate,
        counter_reset_after,
        freeze_after,
        sleep_at_night,
        sf_change,
        max_clients,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    clock = SimClock(speed=speed, start=_start(start))
    sims = {}
    for i, (uid, kind) in enumerate(zip(unit_ids, kinds, strict=True)):
        plant = Plant(
            kind=kind,
            seed=seed + i,
            peak_w=peak_w if peak_w is not None else (6000 if kind == "inverter" else 0),
            latitude=latitude,
            longitude=longitude,
            faults=faults,  # type: ignore[arg-type]
        )
        sims[uid] = SunSpecSim(plant, clock, uid, faults, seed + i)  # type: ignore[arg-type]
    if rtu:
        _serve_rtu(sims, baudrate)
        return
    state = sims[unit_ids[0]]

    def ready() -> None:
        # printed once listening, so that a caller can wait for this line, not poll the port
        print(f"sunspec {device} listening on {host}:{port} unit {unit}", flush=True)

    try:
        asyncio.run(serve_tcp(state, host, port, ready, drop_every))
    except KeyboardInterrupt:
        pass
    except (OSError, RuntimeError) as exc:
        # pymodbus reports a port already in use as RuntimeError("Could not start listen…")
        print(f"cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None


def _serve_rtu(sims: dict, baudrate: int) -> None:
    """One RS485 line on a pty carrying every simulated unit; path first, then one line
    per unit, then serve until interrupted."""
    import signal
    import threading

    from firmware_sim.rtu_line import RtuLine

    if baudrate not in (1200, 9600, 19200, 38400, 115200):
        print(f"--baudrate must be 1200, 9600, 19200, 38400 or 115200, not {baudrate}",
              file=sys.stderr)
        raise typer.Exit(2)
    line = RtuLine(sims, baudrate)
    print(line.path, flush=True)
    for uid, s in sims.items():
        print(f"sunspec {s.plant.kind} on {line.path} unit {uid} ({baudrate} 8N1)", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    line.start()
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        line.stop()
        # what was injected, per unit: a test or an operator compares it with the counters
        for uid, s in sims.items():
            print(f"unit {uid}: requests {s.requests} injected {s.injected}", file=sys.stderr)


def _serial_faults(timeout_rate: float, drop_rate: float, bad_checksum_rate: float,
                   glitch_rate: float, counter_reset_after: float | None,
                   freeze_after: float | None) -> object:
    """The faults a serial meter can show: no Modbus exceptions, sleep or scale factors."""
    return _faults(timeout_rate, drop_rate, bad_checksum_rate, glitch_rate, 0.0,
                   counter_reset_after, freeze_after, False, False, 0)


@sim.command("tic")
def tic_cmd(
    mode: str = typer.Option("historique", "--mode", help="historique or standard"),
    pty: bool = typer.Option(True, "--pty/--stdout", help="emit on a new pseudo-terminal"),
    interval: float = typer.Option(None, "--interval", help="real seconds between frames"),
    seed: int = SEED,
    speed: float = SPEED,
    start: str = START,
    peak_w: int = typer.Option(
        3000, "--peak-w", help="the household's PV peak (standard mode exports)"
    ),
    count: int = typer.Option(0, "--count", help="stop after this many frames (0 = forever)"),
    timeout_rate: float = TIMEOUT,
    drop_rate: float = DROP,
    bad_checksum_rate: float = BADSUM,
    glitch_rate: float = GLITCH,
    counter_reset_after: float = RESET,
    freeze_after: float = FREEZE,
) -> None:
    """Emit Linky TIC frames on a pty (its path is the first stdout line)."""
    from firmware_sim.serial_sim import run_serial_sim

    if mode not in ("historique", "standard"):
        print(f"--mode must be historique or standard, not {mode!r}", file=sys.stderr)
        raise typer.Exit(2)
    faults = _serial_faults(timeout_rate, drop_rate, bad_checksum_rate, glitch_rate,
                            counter_reset_after, freeze_after)
    run_serial_sim("tic", mode, pty, interval, seed, speed, _start(start), peak_w, count, faults)  # type: ignore[arg-type]


@sim.command("p1")
def p1_cmd(
    version: str = typer.Option("5", "--version", help="DSMR version: 5, 4 or 2.2"),
    pty: bool = typer.Option(True, "--pty/--stdout", help="emit on a new pseudo-terminal"),
    interval: float = typer.Option(None, "--interval", help="real seconds between telegrams"),
    seed: int = SEED,
    speed: float = SPEED,
    start: str = START,
    peak_w: int = typer.Option(3000, "--peak-w", help="the household's PV peak (exports)"),
    count: int = typer.Option(0, "--count", help="stop after this many telegrams (0 = forever)"),
    timeout_rate: float = TIMEOUT,
    drop_rate: float = DROP,
    bad_checksum_rate: float = BADSUM,
    glitch_rate: float = GLITCH,
    counter_reset_after: float = RESET,
    freeze_after: float = FREEZE,
) -> None:
    """Emit DSMR P1 telegrams on a pty (its path is the first stdout line)."""
    from firmware_sim.serial_sim import run_serial_sim

    if version not in ("5", "4", "2.2"):
        print(f"--version must be 5, 4 or 2.2, not {version!r}", file=sys.stderr)
        raise typer.Exit(2)
    faults = _serial_faults(timeout_rate, drop_rate, bad_checksum_rate, glitch_rate,
                            counter_reset_after, freeze_after)
    run_serial_sim("p1", version, pty, interval, seed, speed, _start(start), peak_w, count, faults)  # type: ignore[arg-type]


def register(app: typer.Typer) -> None:
    app.add_typer(sim, name="sim")
