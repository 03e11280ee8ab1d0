"""`quartier demo`: a simulated neighbourhood, end to end, on embedded defaults.

Each home is real processes talking real protocols: a SunSpec Modbus simulator (and its
grid meter) for homes with panels, a Linky TIC or DSMR P1 meter emitting on a pty for the
others, and one `quartier gateway run` per home reading them, signing and publishing over
MQTT. The community side runs here: an embedded broker (or --mqtt-url), ingest into SQL
(SQLite, or --database-url), settlement of the day on the ledger contract (an in-process
EVM, or --rpc-url), a verified certificate, and the web app.

Simulated time runs `--speed` times faster than the wall clock; simulators and gateways
share one clock (quartier.clock.SimClock) through the environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import typer

from community.demo_plan import DemoPlan, Home, plan
from quartier.clock import SIM_CLOCK_ENV, SimClock

COMMUNITY = "demo"
# anvil's first well-known development account: only ever used against a local dev node.
ANVIL_DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEMO_PASSWORD = "quartier-demo"


class DemoError(RuntimeError):
    """The demo could not run; the message says which part failed and where to look."""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise DemoError(f"{what} exited with code {proc.returncode}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise DemoError(f"{what} does not listen on port {port} after {timeout:.0f} s")


@dataclass
class Processes:
    """Child processes of the demo, stopped in reverse order, logs kept in the work dir."""

    logdir: Path
    env: dict[str, str]
    procs: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = field(default_factory=list)

    def start(self, name: str, args: list[str], stdout_pipe: bool = False) -> subprocess.Popen[bytes]:
        global _spawning
        log = open(self.logdir / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        _spawning = True  # a SIGTERM now waits until the child is in the list to stop
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "quartier.cli", *args],
                stdout=subprocess.PIPE if stdout_pipe else log, stderr=log, env=self.env,
                start_new_session=True,  # a Ctrl-C reaches only us, and we stop them in order
            )
            self.procs.append((name, proc, log))
        finally:
            _spawning = False
        if _terminated:
            raise SystemExit(128 + signal.SIGTERM)
        return proc

    def check_alive(self) -> None:
        for name, proc, _ in self.procs:
            if proc.poll() is not None:
                raise DemoError(f"{name} exited with code {proc.returncode}; see "
                                f"{self.logdir / (name + '.log')}")

    def stop(self, prefix: str = "", timeout: float = 15.0) -> None:
        chosen = [p for p in self.procs if p[0].startswith(prefix)]
        for _, proc, _ in reversed(chosen):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for _, proc, log in reversed(chosen):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
        self.procs = [p for p in self.procs if p not in chosen]


def _first_line(proc: subprocess.Popen[bytes], timeout: float, what: str) -> str:
    """The first stdout line of a child (the pty path a serial simulator prints)."""
    assert proc.stdout is not None
    result: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        result.append(proc.stdout.readline().decode().strip())

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(timeout)
    if not result or not result[0]:
        raise DemoError(f"{what} printed no pty path (exit code {proc.poll()})")
    # Keep draining stdout so the simulator never blocks on a full pipe.
    threading.Thread(target=lambda: proc.stdout and proc.stdout.read(), daemon=True).start()
    return result[0]


@dataclass
class HomeRuntime:
    home: Home
    gateway_address: str
    account_address: str
    config: Path


def _gateway_config(path: Path, home: Home, mqtt_url: str, devices: list[dict[str, Any]],
                    poll_s: float, claim_period: str) -> None:
    lines = [
        "[gateway]", 'key = "gateway.key"', f'community = "{COMMUNITY}"', 'outbox = "outbox.sqlite"',
        "", "[mqtt]", f'url = "{mqtt_url}"', "",
        "[claims]", f'period = "{claim_period}"', 'timezone = "UTC"', "",
    ]
    for d in devices:
        lines += ["[[device]]"]
        for k, v in d.items():
            lines.append(f"{k} = {json.dumps(v)}")
        lines += [f'interval = "{int(poll_s * 1000)}ms"', ""]
    path.write_text("\n".join(lines))


@contextlib.contextmanager
def _broker(mqtt_url: str | None) -> Iterator[str]:
    if mqtt_url:
        yield mqtt_url
        return
    from community.broker import EmbeddedBroker

    broker = EmbeddedBroker().start()
    try:
        yield broker.url
    finally:
        broker.stop()


def _progress(done: float, width: int = 30) -> str:
    filled = int(done * width)
    return "[" + "#" * filled + "-" * (width - filled) + f"] {done * 100:5.1f} %"


@dataclass
class DemoOptions:
    homes: int = 12
    hours: int = 24
    speed: float = 480.0
    headless: bool = False
    port: int = 8080
    mqtt_url: str | None = None
    database_url: str | None = None
    rpc_url: str | None = None
    data_dir: Path | None = None
    seed: int = 7


def run_demo(opts: DemoOptions, say: Any = print) -> dict[str, Any]:
    """Run the neighbourhood for `hours` of simulated time, settle it, return the summary.
    Unless headless, the web app is served from the start, in this process (the
    in-process EVM lives here)."""
    import sqlalchemy as sa

    from community import registry
    from community.chain.client import ChainClient
    from community.db import open_db
    from community.ingest.config import IngestConfig, MqttConfig
    from community.ingest.runner import IngestWorker
    from community.settlement import run as settle_run
    from quartier import keys as keyfiles

    p: DemoPlan = plan(opts.homes, opts.hours, opts.speed, opts.seed)
    workdir = opts.data_dir or Path(tempfile.mkdtemp(prefix="quartier-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "logs").mkdir(exist_ok=True)
    database_url = opts.database_url or f"sqlite:///{workdir / 'quartier.sqlite'}"
    say(f"work directory {workdir}; database {database_url.split('@')[-1]}")

    engine = open_db(database_url)
    chain = ChainClient(opts.rpc_url, ANVIL_DEV_KEY if opts.rpc_url else None)
    chain.deploy(COMMUNITY)
    say(f"ledger deployed at {chain.ledger_address} ({'node ' + opts.rpc_url if opts.rpc_url else 'in-process EVM'})")
    period_start_s = p.origin_ms // 1000

    # --- the neighbourhood: members, keys, registry, chain ---------------------------
    runtimes: list[HomeRuntime] = []
    from community.app.relay import Relayer
    from community.app.services import init_app_tables
    from community.custody import Custody

    # Members' ledger keys are held by the server, sealed under a KEK kept in the work
    # directory, outside the database (created 0600).
    custody = Custody.from_file(workdir / "custody.kek")
    init_app_tables(engine)
    for home in p.homes:
        hdir = workdir / home.key
        if (hdir / keyfiles.KEY_FILENAME).exists():
            gk = keyfiles.read(hdir / keyfiles.KEY_FILENAME)
        else:
            _, gk = keyfiles.write_new(hdir)
        with engine.begin() as conn:
            if not any(m.id == home.member for m in registry.list_members(conn)):
                registry.add_member(conn, home.member, home.name)
            if registry.get_gateway(conn, gk.address) is None:
                registry.enrol_gateway(conn, gk.address, home.member, home.meter_point,
                                       "production" if home.producer else "grid", active_from_ms=0)
            account = custody.ensure(conn, home.member)
            settle_run.link_account(conn, home.member, account)
        chain.register_member(account)
        chain.register_meter_point(home.meter_point, account)
        chain.register_gateway(gk.address, account, home.meter_point, active_from=period_start_s - 86400)
        runtimes.append(HomeRuntime(home, gk.address, account, hdir / "gateway.toml"))
    say(f"{len(p.homes)} homes enrolled ({len(p.producers)} with panels)")
    # The exchange, governance and the other member contracts beside the ledger, the
    # exchange at the app's rates: energy bought in the market is one two-leg trade on it.
    from community.app.exchange_trades import sync_rates
    from community.chain.suite import deploy_suite

    suite = deploy_suite(chain)
    with engine.begin() as conn:
        sync_rates(conn, suite.exchange)
    if not opts.headless:
        _start_app(opts, p, database_url, chain, custody, suite)
        say(f"web app on http://127.0.0.1:{opts.port}/ — it fills up as the day runs")

    env = {**os.environ, SIM_CLOCK_ENV: "", "TZ": "UTC", "PYTHONUNBUFFERED": "1"}
    procs = Processes(workdir / "logs", env)
    readings_seen = 0
    claim_period = "daily" if p.hours % 24 == 0 else "hourly"
    try:
        with _broker(opts.mqtt_url) as mqtt_url:
            ingest_cfg = IngestConfig(community=COMMUNITY, database_url=database_url,
                                      client_id="demo-ingest", mqtt=MqttConfig(url=mqtt_url),
                                      group="" if opts.mqtt_url is None else "ingest",
                                      live_every_s=1.0, future_tolerance_s=10**9)
            worker = IngestWorker(ingest_cfg, engine)
            worker.connect()
            stop_ingest = threading.Event()
            ingest_thread = threading.Thread(target=worker.run, kwargs={"until": stop_ingest.is_set},
                                             name="ingest", daemon=True)
            ingest_thread.start()

            # Simulated midnight comes 8 wall seconds from now, once the processes run, so
            # every device has a reading before the first interval boundary.
            clock = SimClock(origin_ms=p.origin_ms, anchor_ms=int(time.time() * 1000) + 8000,
                             speed=p.speed)
            env[SIM_CLOCK_ENV] = clock.to_env()
            for rt in runtimes:
                _start_home(procs, rt, p, mqtt_url, claim_period)
            say(f"{len(runtimes)} gateways and their simulators started; simulated day "
                f"{time.strftime('%Y-%m-%d', time.gmtime(p.origin_ms / 1000))}, speed x{p.speed:g}")

            # --- the day runs ---------------------------------------------------------
            end_ms = p.end_ms
            last = -1.0
            while clock.now_ms() < end_ms:
                time.sleep(0.5)
                procs.check_alive()
                done = max(0.0, min(1.0, (clock.now_ms() - p.origin_ms) / (end_ms - p.origin_ms)))
                if done - last >= 0.05 or done >= 1.0:
                    readings_seen = worker.totals["accepted"]
                    sim_hour = time.strftime("%H:%M", time.gmtime(max(p.origin_ms, clock.now_ms()) / 1000))
                    say(f"{_progress(done)}  {sim_hour}  {readings_seen} readings")
                    last = done
            # Claims are signed once each period has ended plus a grace time: wait for them.
            expected_claims = len(runtimes) * max(1, (p.hours if claim_period == "hourly" else p.hours // 24))
            deadline = time.monotonic() + 30 + 6 * 3600 / p.speed
            say("day over: waiting for the gateways' signed period claims")
            while time.monotonic() < deadline:
                with engine.connect() as conn:
                    n = _claims_count(conn, sa, period_start_s, end_ms // 1000)
                if n >= expected_claims:
                    break
                procs.check_alive()
                time.sleep(0.5)
            procs.stop("gw-")
            procs.stop("sim-")
            time.sleep(1.0)  # let ingest commit what the gateways flushed on their way out
            stop_ingest.set()
            ingest_thread.join(30)
            readings_seen = worker.totals["accepted"]
            worker.close()
    finally:
        procs.stop()

    # --- settlement, on chain ----------------------------------------------------------
    from community.ingest.store import recheck_pending_claims

    recheck_pending_claims(engine)
    relayer = Relayer(chain, custody, exchange=suite.exchange, orders=suite.orders)
    orders = _neighbourly_acts(engine, p, relayer)
    periods = _periods(p, claim_period)
    results = []
    for start, end in periods:
        try:
            results.append(settle_run.settle_period(
                engine, start, end, client=chain, options=settle_run.SettleOptions(orders=orders)))
        except settle_run.SettlementError as exc:
            raise DemoError(f"settlement of the period starting {start} failed: {exc}") from None
    say(f"settled {len(results)} period(s) on the ledger")
    trades = _market_day(engine, p, relayer)
    summary = _summary(engine, chain, p, runtimes, results, readings_seen, workdir)
    summary["trades"] = trades
    summary["database_url"] = database_url
    summary["ledger"] = chain.ledger_address
    return summary


def _neighbourly_acts(engine: Any, p: DemoPlan, relayer: Any) -> list[Any]:
    """A standing donation, as a member sets it in the app: the first producer gives a
    tenth of their export to a neighbour without panels, signed with the producer's key on
    the ledger's standing orders. Settlement executes it inside each period's batch."""
    from community.app import services

    services.init_app_tables(engine)
    donor = p.producers[0].member
    beneficiary = next(h.member for h in reversed(p.homes) if not h.producer)
    with engine.begin() as conn:
        if not services.donation_orders(conn, donor)["given"]:
            services.create_donation(conn, donor, beneficiary, share_bp=1000, now=int(time.time()),
                                     relayer=relayer)
        return services.standing_orders(conn)


def _market_day(engine: Any, p: DemoPlan, relayer: Any = None) -> int:
    """Neighbours trade: an hour of bike repair offered, local energy bought with hours.
    Payments in hours are signed with the members' custody keys and relayed to the ledger
    (`relayer`); with the relayer's exchange, the energy purchase is one Exchange trade
    (the seller's signed offer, sold as one lot, taken by the buyer): both legs on chain."""
    from community.app import services

    now = int(time.time())
    consumers = [h for h in p.homes if not h.producer]
    producer = p.producers[0]
    n = 0
    with engine.begin() as conn:
        if services.trades_of(conn, producer.member):
            return len(services.trades_of(conn, producer.member))
        energy = services.create_offer(conn, producer.member, "energy",
                                       "Surplus from my roof, this week", 5_000, now, relayer=relayer)
        repair = services.create_offer(conn, consumers[0].member, "hours",
                                       "Bike repair, one hour", 100, now)
        services.take_offer(conn, consumers[0].member, energy, 5_000, "HOUR", now, relayer=relayer)
        n += 1
        t = services.take_offer(conn, producer.member, repair, 100, "HOUR", now, relayer=relayer)
        services.confirm_trade(conn, producer.member, int(t["id"]), now,  # type: ignore[call-overload]
                               relayer=relayer)
        n += 1
    return n


def _claims_count(conn: Any, sa: Any, start: int, end: int) -> int:
    from community.db import claims

    return int(conn.execute(
        sa.select(sa.func.count()).select_from(claims).where(
            claims.c.period_start >= start, claims.c.period_end <= end,
            claims.c.status == "verified")
    ).scalar_one())


def _periods(p: DemoPlan, claim_period: str) -> list[tuple[int, int]]:
    start = p.origin_ms // 1000
    step = 86400 if claim_period == "daily" else 3600
    return [(s, s + step) for s in range(start, p.end_ms // 1000, step)]


def _start_home(procs: Processes, rt: HomeRuntime, p: DemoPlan, mqtt_url: str, claim_period: str) -> None:
    home = rt.home
    common = ["--seed", str(home.seed), "--speed", f"{p.speed:g}"]
    devices: list[dict[str, Any]] = []
    # Serial meters emit a frame a little more often than the gateway polls, so every
    # poll finds a fresh frame.
    frame_s = f"{max(0.1, p.poll_s * 0.8):.2f}"
    if home.producer:
        peak = 3000 + 500 * (home.index % 7)
        inv_port, meter_port = _free_port(), _free_port()
        inv = procs.start(f"sim-{home.key}-inverter",
                          ["sim", "sunspec", "--host", "127.0.0.1", "--port", str(inv_port),
                           "--device", "inverter", "--peak-w", str(peak), *common])
        met = procs.start(f"sim-{home.key}-meter",
                          ["sim", "sunspec", "--host", "127.0.0.1", "--port", str(meter_port),
                           "--device", "meter", "--peak-w", str(peak), *common])
        _wait_port(inv_port, 30, f"inverter simulator of {home.key}", inv)
        _wait_port(meter_port, 30, f"meter simulator of {home.key}", met)
        devices.append({"name": "inverter", "driver": "sunspec", "url": f"tcp://127.0.0.1:{inv_port}",
                        "unit": 1, "role": "production"})
        devices.append({"name": "meter", "driver": "sunspec", "url": f"tcp://127.0.0.1:{meter_port}",
                        "unit": 1, "role": "grid"})
    elif home.meter == "p1":
        proc = procs.start(f"sim-{home.key}-p1", ["sim", "p1", "--version", "5", "--pty", "--peak-w", "0",
                                                   "--interval", frame_s, *common], stdout_pipe=True)
        devices.append({"name": "p1", "driver": "p1", "port": _first_line(proc, 30, "P1 simulator"),
                        "role": "grid"})
    else:
        mode = "standard" if home.meter == "tic-standard" else "historique"
        proc = procs.start(f"sim-{home.key}-tic", ["sim", "tic", "--mode", mode, "--pty", "--peak-w", "0",
                                                    "--interval", frame_s, *common], stdout_pipe=True)
        devices.append({"name": "linky", "driver": "tic", "port": _first_line(proc, 30, "TIC simulator"),
                        "mode": mode, "role": "grid"})
    _gateway_config(rt.config, home, mqtt_url, devices, p.poll_s, claim_period)
    procs.start(f"gw-{home.key}", ["gateway", "run", "--config", str(rt.config)])


def _summary(engine: Any, chain: Any, p: DemoPlan, runtimes: list[HomeRuntime],
             results: list[dict[str, Any]], readings: int, workdir: Path) -> dict[str, Any]:
    import sqlalchemy as sa

    from community.db import claims
    from community.settlement import run as settle_run

    start, end = p.origin_ms // 1000, p.end_ms // 1000
    with engine.connect() as conn:
        rows = conn.execute(sa.select(claims).where(
            claims.c.period_start >= start, claims.c.period_end <= end,
            claims.c.status == "verified")).all()
        production = sum(int(r.produced_wh) for r in rows)
        sql_balances = settle_run.balances(conn)
        accounts = {r.member_id: r.address for r in conn.execute(
            sa.select(settle_run.schema.settle_accounts)).all()}
        # Member payments relayed to the ledger and both legs of Exchange trades (the app's
        # journal rows with a transaction) are on chain too: add them before comparing.
        from community.app import tables as app_tables

        je = app_tables.entries
        expected = {(b["account"], b["unit"]): b["balance"] for b in sql_balances}
        for account, unit, amount in conn.execute(
                sa.select(je.c.account, je.c.unit, sa.func.sum(je.c.amount))
                .where(je.c.tx_hash.is_not(None)).group_by(je.c.account, je.c.unit)):
            expected[(account, unit)] = expected.get((account, unit), 0) + int(amount)
        payments_on_chain = conn.execute(sa.select(sa.func.count(sa.distinct(je.c.tx_hash)))
                                         .where(je.c.tx_hash.is_not(None))).scalar_one()
        mv = settle_run.schema.settle_movements
        donated = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(mv.c.amount), 0)).where(
            mv.c.reason == "donation", mv.c.amount > 0)).scalar_one()
    shared = sum(int(r.get("allocated_wh", 0)) for r in results)
    to_grid = sum(int(r.get("exported_to_grid_wh", 0)) for r in results)
    from_grid = sum(int(r.get("imported_from_grid_wh", 0)) for r in results)
    kwh_settled = sum(int(e["amount"]) for r in results for e in r.get("entries", [])
                      if e["unit"] == "KWH" and e["amount"] > 0)
    # Balances on chain must equal the sum of settled entries in SQL, account by account.
    chain_equals_sql = True
    for (account, unit), balance in expected.items():
        address = accounts.get(account) or (account if account.startswith("0x") else None)
        if address is None:
            address = str(chain.call("FUND")) if account == "fund" else None
        if address is None or chain.balance(unit, address) != balance:
            chain_equals_sql = False
    # Standing donations executed on chain (the ledger checked each against its order).
    donated_on_chain = sum(int(ev["args"]["unitAndAmount"]) & (2**96 - 1)
                           for ev in chain.ledger.events.Donated().get_logs(from_block=0))
    certificate_verified = _certificate_check(engine, chain, p, runtimes, workdir)
    return {
        "homes": len(p.homes),
        "readings": readings,
        "production_wh": production,
        "self_consumed_wh": production - shared - to_grid,
        "shared_locally_wh": shared,
        "grid_export_wh": to_grid,
        "grid_import_wh": from_grid,
        "kwh_settled": kwh_settled,
        "chain_equals_sql": chain_equals_sql,
        "certificate_verified": certificate_verified,
        "donated_wh": int(donated),
        "donated_on_chain_wh": donated_on_chain,
        "payments_on_chain": int(payments_on_chain),
    }


def _certificate_check(engine: Any, chain: Any, p: DemoPlan, runtimes: list[HomeRuntime],
                       workdir: Path) -> bool:
    from community.settlement import run as settle_run
    from community.settlement.certificates import verify_certificate

    outdir = workdir / "certificates"
    outdir.mkdir(exist_ok=True)
    for rt in runtimes:
        if not rt.home.producer:
            continue
        with engine.connect() as conn:
            certs = settle_run.certificates(conn, rt.home.meter_point, p.origin_ms // 1000,
                                            p.end_ms // 1000, chain_id=chain.chain_id)
        certs = [c for c in certs if int(c.get("wh", 0)) > 0] or certs
        if not certs:
            continue
        cert = max(certs, key=lambda c: int(c.get("wh", 0)))
        path = outdir / f"{rt.home.meter_point}-{cert['hour_start']}.json"
        path.write_text(json.dumps(cert, indent=2))
        return bool(verify_certificate(json.loads(path.read_text()), chain)["valid"])
    return False


_spawning = False
_terminated = False


def _terminate(signum: int, _frame: Any) -> None:
    global _terminated
    _terminated = True
    if not _spawning:
        raise SystemExit(128 + signum)


def demo_cmd(
    homes: int = typer.Option(12, "--homes", help="Number of simulated homes (half with panels)."),
    hours: int = typer.Option(24, "--hours", help="Simulated hours to run."),
    speed: float = typer.Option(480.0, "--speed", help="Simulated seconds per second; 0 = as fast as possible."),
    headless: bool = typer.Option(False, "--headless", help="Do not serve the web app; print the summary as JSON."),
    port: int = typer.Option(8080, "--port", help="Web app port."),
    mqtt_url: str | None = typer.Option(None, "--mqtt-url", help="A real broker instead of the embedded one."),
    database_url: str | None = typer.Option(None, "--database-url", help="PostgreSQL (or SQLite) URL."),
    rpc_url: str | None = typer.Option(None, "--rpc-url", help="A JSON-RPC node (e.g. anvil) instead of the in-process EVM."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Keep keys, logs and the database here."),
    seed: int = typer.Option(7, "--seed"),
) -> None:
    """Run a simulated neighbourhood end to end: gateways, ingest, settlement, certificates, app."""
    opts = DemoOptions(homes, hours, speed, headless, port, mqtt_url, database_url, rpc_url, data_dir, seed)
    # The children run in their own sessions (so that a Ctrl-C reaches only us and we stop
    # them in order); a SIGTERM must unwind through the same cleanup, not leave them behind.
    signal.signal(signal.SIGTERM, _terminate)

    def say(msg: str) -> None:
        typer.echo(msg, err=headless)

    try:
        summary = run_demo(opts, say)
    except DemoError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if headless:
        typer.echo(json.dumps(summary))
        return
    _print_table(summary)
    typer.echo(json.dumps(summary))
    p = plan(opts.homes, opts.hours, opts.speed, opts.seed)
    typer.echo(f"The neighbourhood's web app: http://127.0.0.1:{opts.port}/  (Ctrl-C to stop)")
    typer.echo(f"Demo accounts (password {DEMO_PASSWORD!r}):")
    for h in p.homes:
        role = "board, " if h.index == 0 else ""
        typer.echo(f"  {h.member:<10} {role}{'panels' if h.producer else h.meter} — {h.name}")
    typer.echo("  operator   grid operator (certificates)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        typer.echo("stopped")


def _start_app(opts: DemoOptions, p: DemoPlan, database_url: str, chain: Any, custody: Any,
               suite: Any) -> None:
    """Serve the web app from a thread while the demo runs, and after it."""
    import uvicorn

    from community.app import AppSettings, create_app
    from community.app.sessions import ensure_member_accounts

    application = create_app(AppSettings(database_url=database_url, community="Quartier démo",
                                         chain=chain, custody=custody, suite=suite))
    with application.state.engine.begin() as conn:
        ensure_member_accounts(conn, DEMO_PASSWORD, now=int(time.time()),
                               board=(p.homes[0].member,), operator="operator")
    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=opts.port,
                                           log_level="warning"))
    threading.Thread(target=server.run, name="web-app", daemon=True).start()
    _wait_port(opts.port, 30, "the web app")


def _print_table(s: dict[str, Any]) -> None:
    rows = [
        ("homes", s["homes"]), ("signed readings", s["readings"]),
        ("production", f"{s['production_wh'] / 1000:.1f} kWh"),
        ("self-consumed", f"{s['self_consumed_wh'] / 1000:.1f} kWh"),
        ("shared with neighbours", f"{s['shared_locally_wh'] / 1000:.1f} kWh"),
        ("exported to the grid", f"{s['grid_export_wh'] / 1000:.1f} kWh"),
        ("imported from the grid", f"{s['grid_import_wh'] / 1000:.1f} kWh"),
        ("crypto-kWh settled", f"{s['kwh_settled'] / 1000:.1f} kWh"),
        ("donated to a neighbour", f"{s.get('donated_wh', 0) / 1000:.1f} kWh "
                                   f"({s.get('donated_on_chain_wh', 0) / 1000:.1f} kWh executed on chain)"),
        ("trades", f"{s.get('trades', 0)} ({s.get('payments_on_chain', 0)} payments on chain)"),
        ("balances on chain = SQL", "yes" if s["chain_equals_sql"] else "NO"),
        ("certificate verified", "yes" if s["certificate_verified"] else "NO"),
    ]
    width = max(len(r[0]) for r in rows)
    typer.echo("")
    for k, v in rows:
        typer.echo(f"  {k:<{width}}  {v}")
    typer.echo("")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_cmd)

