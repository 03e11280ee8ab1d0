"""`quartier gateway setup`: find the devices, write the gateway's config, prepare its keys.

Run once at installation (deploy/install-gateway.sh runs it). It probes the serial ports
for a TIC or P1 meter and the given Modbus TCP addresses (or a scanned subnet) for a
SunSpec inverter, asks what it cannot guess, and writes a config that `gateway.config`
has already parsed, so the service starts on what was written. It also creates the
gateway's signing key and, for the broker, a TLS key with a certificate request whose CN
is the gateway's address: the community signs the request (`quartier ca issue-gateway
--csr`), the TLS key never leaves the Pi.

Rendering the config is a pure function of the answers (`render_config`); probing and
prompting are the thin layer around it.
"""

from __future__ import annotations

import glob
import ipaddress
import json
import os
import re
import socket
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

# Where install-gateway.sh puts things; the systemd unit makes /etc read-only and
# /var/lib/quartier the service's writable state directory.
DEFAULT_CONFIG = Path("/etc/quartier/gateway.toml")
DEFAULT_KEY = Path("/etc/quartier/gateway.key")
DEFAULT_OUTBOX = Path("/var/lib/quartier/outbox.sqlite")
DEFAULT_TLS_DIR = Path("/etc/quartier/tls")
# Serial ports a meter is found on: the Pi's UART (serial0 links to ttyAMA0 or ttyS0) and
# USB adapters (a TIC "µTeleinfo" dongle, a P1 cable).
SERIAL_CANDIDATES = ("/dev/serial0", "/dev/ttyAMA0", "/dev/ttyS0", "/dev/ttyUSB*", "/dev/ttyACM*")
MODBUS_PORTS = (502, 1502)  # the standard port, and the one SMA/Fronius/Huawei dongles also use
SCAN_MAX_HOSTS = 1024  # a /22: larger networks are not a home LAN, name the inverter instead


class SetupError(Exception):
    """Setup cannot go on; the message says what to give or fix."""


@dataclass(frozen=True)
class FoundDevice:
    """A device the probe read once, as the config will name it."""

    name: str
    driver: str  # sunspec | tic | p1
    role: str  # production | grid
    url: str | None = None
    port: str | None = None
    unit: int = 1
    mode: str | None = None
    summary: str = ""


@dataclass(frozen=True)
class Answers:
    community: str
    mqtt_url: str
    key: Path
    outbox: Path
    devices: tuple[FoundDevice, ...]
    tls_dir: Path | None = None  # ca.crt, gateway.crt, gateway.key for mqtts://
    interval: str = "10s"


# --- pure: the config text -------------------------------------------------------------


def _q(value: str) -> str:
    # A TOML basic string: JSON's escaping of an ASCII string is valid TOML.
    return json.dumps(value, ensure_ascii=True)


def render_config(a: Answers, now: datetime | None = None) -> str:
    lines = ["# The gateway's configuration (docs/install-gateway.md describes every key)."]
    if now is not None:
        lines.append(f"# Written by `quartier gateway setup` on {now:%Y-%m-%d %H:%M %Z}.")
    lines += ["", "[gateway]", f"key = {_q(str(a.key))}", f"community = {_q(a.community)}",
              f"outbox = {_q(str(a.outbox))}", "", "[mqtt]", f"url = {_q(a.mqtt_url)}"]
    if a.tls_dir is not None:
        lines += [f"ca = {_q(str(a.tls_dir / 'ca.crt'))}",
                  f"cert = {_q(str(a.tls_dir / 'gateway.crt'))}",
                  f"key = {_q(str(a.tls_dir / 'gateway.key'))}"]
    for d in a.devices:
        # A summary is a comment: one line of printable text, whatever the device reported
        # (TOML refuses control characters even in comments).
        clean = " ".join("".join(c if c.isprintable() else " " for c in d.summary).split())
        note = f"  # {clean}" if clean else ""
        lines += ["", f"[[device]]{note}", f"name = {_q(d.name)}", f"driver = {_q(d.driver)}"]
        if d.url is not None:
            lines.append(f"url = {_q(d.url)}")
        if d.port is not None:
            lines.append(f"port = {_q(d.port)}")
        if d.driver in ("sunspec", "profile"):
            lines.append(f"unit = {d.unit}")
        if d.mode is not None:
            lines.append(f"mode = {_q(d.mode)}")
        lines += [f"role = {_q(d.role)}", f"interval = {_q(a.interval)}"]
    return "\n".join(lines) + "\n"


def unique_names(devices: Iterable[FoundDevice]) -> tuple[FoundDevice, ...]:
    """inverter, inverter-2, … so two inverters on one roof get distinct names."""
    seen: dict[str, int] = {}
    out = []
    for d in devices:
        n = seen.get(d.name, 0) + 1
        seen[d.name] = n
        out.append(d if n == 1 else FoundDevice(**{**d.__dict__, "name": f"{d.name}-{n}"}))
    return tuple(out)


def from_modbus_probe(result: dict[str, Any]) -> FoundDevice:
    """A device from `probe_modbus`'s answer: an inverter (production) or a meter (grid)."""
    models = [int(m) for m in result.get("models", []) if str(m).isdigit()]
    is_meter = any(200 <= m < 300 for m in models) and not any(100 <= m < 200 for m in models)
    maker = " ".join(str(result.get(k) or "") for k in ("manufacturer", "model")).strip()
    return FoundDevice(
        name="meter" if is_meter else "inverter", driver="sunspec",
        role="grid" if is_meter else "production", url=str(result["url"]),
        unit=int(result.get("unit", 1)),
        summary=f"SunSpec {maker or 'device'}, models {models}".strip())


def from_serial_probe(result: dict[str, Any]) -> FoundDevice:
    """A meter from `probe_serial`'s answer (its line settings give the P1 version)."""
    protocol = str(result["protocol"])
    if protocol == "tic":
        mode: str | None = str(result.get("mode") or "historique")
        what = f"Linky TIC {mode}"
    else:
        # DSMR 4/5 talk at 115200 baud with a CRC, 2.2/3 at 9600 without.
        mode = "5" if "115200" in str(result.get("line", "")) else "2.2"
        what = f"DSMR P1 {mode}"
    ident = result.get("meter_point") or result.get("serial")
    return FoundDevice(name="meter", driver=protocol, role="grid", port=str(result["port"]),
                       mode=mode, summary=f"{what}, meter {ident}" if ident else what)


# --- I/O: probing ----------------------------------------------------------------------


def serial_candidates() -> list[str]:
    found: list[str] = []
    seen: set[str] = set()
    for pattern in SERIAL_CANDIDATES:
        for path in sorted(glob.glob(pattern)):
            real = os.path.realpath(path)
            if real not in seen:  # serial0 is a link to ttyAMA0 or ttyS0
                seen.add(real)
                found.append(path)
    return found


def scan_subnet(cidr: str, ports: Iterable[int] = MODBUS_PORTS,
                timeout_s: float = 0.3) -> list[str]:
    """tcp://host:port of every host in `cidr` accepting a TCP connection on a Modbus port."""
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError as exc:
        raise SetupError(f"--scan {cidr!r}: {exc}") from None
    if net.num_addresses > SCAN_MAX_HOSTS:
        raise SetupError(f"--scan {cidr}: {net.num_addresses} addresses is more than a home "
                         f"network (at most {SCAN_MAX_HOSTS}); give the inverter's address "
                         "with --modbus tcp://HOST:502")
    hosts = [str(h) for h in (net.hosts() if net.num_addresses > 2 else net)]
    targets = [(h, p) for h in hosts for p in ports]

    def is_open(target: tuple[str, int]) -> bool:
        with socket.socket(socket.AF_INET6 if ":" in target[0] else socket.AF_INET) as s:
            s.settimeout(timeout_s)
            return s.connect_ex(target) == 0

    with ThreadPoolExecutor(max_workers=64) as pool:
        flags = list(pool.map(is_open, targets))
    return [f"tcp://{h}:{p}" if ":" not in h else f"tcp://[{h}]:{p}"
            for (h, p), ok in zip(targets, flags, strict=True) if ok]


def probe_all(modbus: list[str], units: list[int], serial: list[str],
              say: Callable[[str], None], timeout_s: float = 3.0) -> list[FoundDevice]:
    from gateway.drivers.base import DeviceError
    from gateway.drivers.probe import probe_modbus, probe_serial

    found: list[FoundDevice] = []
    for url in modbus:
        for unit in units:
            say(f"probing {url} unit {unit} (SunSpec)…")
            try:
                found.append(from_modbus_probe(probe_modbus(url, unit, timeout_s)))
                say(f"  found: {found[-1].summary}")
                break
            except (DeviceError, ValueError, OSError) as exc:
                say(f"  nothing usable: {exc}")
    for port in serial:
        say(f"probing {port} (TIC, then P1)…")
        try:
            found.append(from_serial_probe(probe_serial(port, max(timeout_s, 3.5))))
            say(f"  found: {found[-1].summary}")
        except (DeviceError, ValueError, OSError) as exc:
            say(f"  nothing usable: {exc}")
    return found


# --- I/O: keys and files ---------------------------------------------------------------


def _under(root: Path, path: Path) -> Path:
    """`path` as it is on the target system, inside `root` (the installer's scratch root)."""
    return root / path.relative_to("/") if path.is_absolute() else root / path


def ensure_key(path: Path) -> str:
    """The gateway's address, creating its signing key (0600) if there is none yet."""
    from quartier import keys as keyfiles

    if path.exists():
        text = path.read_text()
        try:
            return str(json.loads(text)["address"])
        except (ValueError, KeyError, TypeError):
            raise SetupError(f"{path} exists but is not a Quartier key file") from None
    if path.name != keyfiles.KEY_FILENAME:
        raise SetupError(f"--key must name a file called {keyfiles.KEY_FILENAME} "
                         f"(got {path.name})")
    try:
        _, key = keyfiles.write_new(path.parent)
    except keyfiles.KeyFileError as exc:
        raise SetupError(str(exc)) from None
    return key.address


def ensure_tls_request(tls_dir: Path, address: str) -> Path:
    """A TLS key (0600) and a certificate request for `address`; returns the request."""
    from community.ca import gateway_csr, key_pem, new_key, pem

    tls_dir.mkdir(parents=True, exist_ok=True)
    key_path, csr_path = tls_dir / "gateway.key", tls_dir / "gateway.csr"
    if key_path.exists():
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise SetupError(f"{key_path} is not an EC private key")
    else:
        key = new_key()
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem(key))
    csr_path.write_bytes(pem(gateway_csr(key, address)))
    return csr_path


def write_config(path: Path, text: str, force: bool) -> None:
    if path.exists() and not force:
        raise SetupError(f"{path} exists: keep it, or run again with --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# --- the command -----------------------------------------------------------------------

_COMMUNITY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def setup_command(
    out: Path = typer.Option(DEFAULT_CONFIG, "--out", help="Config file to write."),
    community: str | None = typer.Option(None, "--community", help="The community id."),
    mqtt_url: str | None = typer.Option(None, "--mqtt-url",
                                        help="mqtts://broker:8883 (mqtt:// only for tests)."),
    modbus: list[str] = typer.Option([], "--modbus", help="tcp://HOST:PORT of an inverter "
                                     "or meter speaking SunSpec (repeatable)."),
    unit: list[int] = typer.Option([1], "--unit", help="Modbus unit ids to try (repeatable)."),
    scan: str | None = typer.Option(None, "--scan", help="Also look for Modbus devices on "
                                    "this subnet, e.g. 192.168.1.0/24."),
    serial: list[str] = typer.Option([], "--serial", help="Serial port of a TIC or P1 meter "
                                     "(repeatable; default: the Pi's UART and USB adapters)."),
    no_serial_scan: bool = typer.Option(False, "--no-serial-scan",
                                        help="Probe only the --serial ports given."),
    key: Path = typer.Option(DEFAULT_KEY, "--key", help="Gateway signing key (created if "
                             "missing)."),
    outbox: Path = typer.Option(DEFAULT_OUTBOX, "--outbox"),
    tls_dir: Path = typer.Option(DEFAULT_TLS_DIR, "--tls-dir", help="Where the broker's CA, "
                                 "this gateway's certificate and TLS key live."),
    interval: str = typer.Option("10s", "--interval", help="Poll interval of each device."),
    root: Path = typer.Option(Path("/"), "--root", help="Write files under this directory "
                              "(an image being prepared); paths in the config stay as given."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask: take what was found."),
    force: bool = typer.Option(False, "--force", help="Replace an existing config."),
    timeout: float = typer.Option(3.0, "--timeout", help="Seconds per probe attempt."),
) -> None:
    """Find the inverter and the meter, write the gateway config, prepare keys."""
    from gateway.config import ConfigError, loads, parse_duration

    interactive = not yes and sys.stdin.isatty()

    def say(message: str) -> None:
        typer.echo(message, err=True)

    def fail(message: str, code: int = 1) -> typer.Exit:
        typer.echo(f"error: {message}", err=True)
        return typer.Exit(code)

    try:
        parse_duration(interval)
    except ValueError as exc:
        raise fail(f"--interval: {exc}", 2) from None
    if community is None and interactive:
        community = typer.prompt("Community id (as the community server names it)")
    if not community or not _COMMUNITY.match(community):
        raise fail("--community is needed: 1-64 lowercase letters, digits, '_' or '-'", 2)
    if mqtt_url is None and interactive:
        mqtt_url = typer.prompt("Community broker", default="mqtts://mqtt.example.org:8883")
    if not mqtt_url:
        raise fail("--mqtt-url is needed, e.g. mqtts://mqtt.<community>.org:8883", 2)

    try:
        targets = list(modbus) + (scan_subnet(scan) if scan else [])
        ports = list(serial) + ([] if no_serial_scan else
                                [p for p in serial_candidates() if p not in serial])
    except SetupError as exc:
        raise fail(str(exc), 2) from None
    found = probe_all(targets, unit, ports, say, timeout)
    if interactive:
        found = [d for d in found if typer.confirm(f"Use {d.name}: {d.summary}?", default=True)]
    if not found:
        say("warning: no device found; the config has none yet. Check the wiring "
            "(docs/install-gateway.md), then run `quartier meter probe` and this again.")
    tls = mqtt_url.startswith(("mqtts://", "ssl://"))
    answers = Answers(community=community, mqtt_url=mqtt_url, key=key, outbox=outbox,
                      devices=unique_names(found), tls_dir=tls_dir if tls else None,
                      interval=interval)
    text = render_config(answers, datetime.now(UTC))
    try:
        loads(text, out)  # what the service will parse, parsed now
    except ConfigError as exc:
        raise fail(f"the config would not load: {exc}") from None

    try:
        address = ensure_key(_under(root, key))
        csr = ensure_tls_request(_under(root, tls_dir), address) if tls else None
        write_config(_under(root, out), text, force)
    except (SetupError, OSError) as exc:
        raise fail(str(exc)) from None
    typer.echo(json.dumps({
        "config": str(out), "address": address, "community": community,
        "devices": [{"name": d.name, "driver": d.driver, "role": d.role} for d in found],
        "csr": str(tls_dir / "gateway.csr") if csr else None,
    }))
    say(f"Gateway address: {address}")
    if csr is not None:
        say(f"Send {tls_dir / 'gateway.csr'} to your community: it returns gateway.crt and ca.crt for {tls_dir}.")
