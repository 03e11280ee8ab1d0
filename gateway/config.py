"""The gateway's configuration: one TOML file, parsed once into typed, frozen values.

Unknown keys and bad values are `ConfigError`s that name the key and its line, so an
installer editing the file on a Pi over SSH can fix it without reading code. Paths are
relative to the config file. Durations are strings such as "500ms", "1s", "15m", "2h",
"1d" (or a bare number of seconds). The minimal config of docs/gateway.md works as
written; every other key has a default.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from gateway.drivers.spec import DeviceSpec

DRIVERS = ("sunspec", "profile", "tic", "p1")
ROLES = ("production", "grid")
SERIAL_DRIVERS = ("tic", "p1")

# A reading per device per second fills ~35 MB a day of outbox when the broker is away;
# a million readings (~400 MB) is a fortnight of one device at 1 s, months at 15 s.
DEFAULT_OUTBOX_MAX_READINGS = 1_000_000


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file, line and key."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Seconds from "500ms", "1s", "15m", "2h", "1d" or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like \"1s\" or \"15m\", got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
    else:
        raise ValueError(f"expected a duration like \"1s\" or \"15m\", got {value!r}")
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {value!r}")
    return seconds


@dataclass(frozen=True)
class MqttConfig:
    host: str
    port: int
    tls: bool
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    client_id: str | None = None  # default: quartier-<gateway address>, stable across restarts
    keepalive_s: float = 30.0
    max_inflight: int = 500  # messages published and not yet acknowledged
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0


@dataclass(frozen=True)
class DeviceConfig:
    spec: DeviceSpec
    interval_s: float
    jitter_s: float
    backoff_max_s: float
    line: int  # where the [[device]] table starts, for messages
    stale_polls: int = 10
    rated_power_w: int | None = None
    # A production device that stops answering after reporting at most this power is
    # asleep (an inverter at night), not failing.
    asleep_below_w: int = 50

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class ProxyConfig:
    host: str
    port: int
    device: str
    writes: bool = False
    cache_age_s: float = 1.0


@dataclass(frozen=True)
class ClaimsConfig:
    enabled: bool = True
    period: str = "daily"  # "daily" (local midnight) or "hourly"; aligned to `timezone`
    timezone: str = "local"  # an IANA name, or "local" for the Pi's own zone
    interval_s: int = 900  # settlement interval of the intervals root (15 minutes)


@dataclass(frozen=True)
class GatewayConfig:
    path: Path
    key: Path
    passphrase_file: Path | None
    community: str
    outbox: Path
    outbox_max_readings: int
    mqtt: MqttConfig
    devices: tuple[DeviceConfig, ...]
    proxies: tuple[ProxyConfig, ...] = ()
    claims: ClaimsConfig = ClaimsConfig()
    status_interval_s: float = 5.0
    metrics: tuple[str, int] | None = None  # host, port of the Prometheus endpoint
    log_level: str = "info"

    @property
    def status_file(self) -> Path:
        # Beside the outbox: the running gateway writes it, `gateway status` reads it.
        return self.outbox.with_name(self.outbox.name + ".status.json")


# --- locating keys in the source, for messages ---------------------------------------


class _Lines:
    """Finds the line of a key in the TOML text (tomllib gives values, not positions)."""

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\"' -]+?)\s*\]\]?\s*(#.*)?$")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_-]+|\"[^\"]*\")\s*=")

    def __init__(self, text: str) -> None:
        # (table name, array index or -1, first line) for each header, in order
        self.tables: list[tuple[str, int, int]] = [("", -1, 1)]
        self.keys: list[tuple[int, str]] = []  # (line, key)
        counts: dict[str, int] = {}
        for n, raw in enumerate(text.splitlines(), start=1):
            if m := self._HEADER.match(raw):
                name = m.group(2).strip()
                if m.group(1) == "[[":
                    idx = counts.get(name, 0)
                    counts[name] = idx + 1
                    self.tables.append((name, idx, n))
                else:
                    self.tables.append((name, -1, n))
            elif m := self._KEY.match(raw):
                self.keys.append((n, m.group(1).strip('"')))

    def table(self, name: str, index: int = -1) -> int:
        for t, i, n in self.tables:
            if t == name and i == index:
                return n
        return 0

    def key(self, table: str, index: int, key: str) -> int:
        start = self.table(table, index)
        following = [n for _, _, n in self.tables if n > start]
        end = min(following) if following else 1 << 30
        for n, k in self.keys:
            if start <= n < end and k == key:
                return n
        return start


T = TypeVar("T")


class _Table:
    """One TOML table being read: hands out typed values and remembers which keys it saw."""

    def __init__(self, cfg: _Reader, name: str, data: object, index: int = -1) -> None:
        self.cfg, self.name, self.index = cfg, name, index
        label = f"[[{name}]] #{index + 1}" if index >= 0 else f"[{name}]"
        if not isinstance(data, dict):
            raise cfg.error(cfg.lines.table(name, index), f"{label} must be a table")
        self.data: dict[str, Any] = data
        self.label = label
        self.used: set[str] = set()

    def line(self, key: str) -> int:
        return self.cfg.lines.key(self.name, self.index, key)

    def fail(self, key: str, message: str) -> ConfigError:
        return self.cfg.error(self.line(key), f"{self.label} {key}: {message}")

    def get(self, key: str, kind: type[T] | tuple[type, ...], default: Any = ...,
            check: Callable[[Any], Any] | None = None) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                typo = difflib.get_close_matches(key, [k for k in self.data if k not in self.used],
                                                 n=1, cutoff=0.7)
                if typo:
                    raise self.fail(typo[0], f"unknown key (did you mean {key!r}?)")
                raise self.cfg.error(self.cfg.lines.table(self.name, self.index),
                                     f"{self.label}: missing required key {key!r}")
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise self.fail(key, f"expected {_kind_names(kinds)}, got {value!r}")
        if not isinstance(value, kinds):
            raise self.fail(key, f"expected {_kind_names(kinds)}, got {value!r}")
        if check is not None:
            try:
                return check(value)
            except ValueError as exc:
                raise self.fail(key, str(exc)) from None
        return value

    def duration(self, key: str, default: float | None = None) -> Any:
        return self.get(key, (str, int, float), default if default is not None else ...,
                        check=parse_duration)

    def path(self, key: str, default: Any = ...) -> Any:
        value = self.get(key, str, default)
        if not isinstance(value, str):
            return value
        if not value:
            raise self.fail(key, "expected a path, got an empty string")
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.cfg.base / p)

    def done(self) -> None:
        unknown = [k for k in self.data if k not in self.used]
        if unknown:
            k = unknown[0]
            raise self.fail(k, f"unknown key (known: {', '.join(sorted(self.used))})")


def _kind_names(kinds: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             list: "a list", dict: "a table"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


class _Reader:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.base = path.parent
        self.lines = _Lines(text)

    def error(self, line: int, message: str) -> ConfigError:
        return ConfigError(f"{self.path}:{line}: {message}" if line else f"{self.path}: {message}")


# --- value checks ----------------------------------------------------------------------

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_COMMUNITY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def _name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"{value!r} must be 1-64 letters, digits, '_', '.', '-'")
    return value


def _community(value: str) -> str:
    # It is an MQTT topic level: no '/', '+', '#'.
    if not _COMMUNITY.match(value):
        raise ValueError(f"{value!r} must be 1-64 lowercase letters, digits, '_' or '-'")
    return value


def _one_of(*choices: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
        return value
    return check


def _positive_int(value: int) -> int:
    if value <= 0:
        raise ValueError(f"must be positive, got {value}")
    return value


def _unit(value: int) -> int:
    if not 0 <= value <= 247:
        raise ValueError(f"a Modbus unit id is 0-247, got {value}")
    return value


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected \"host:port\", got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def _mqtt_url(value: str) -> tuple[str, int, bool]:
    u = urlsplit(value)
    if u.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not u.hostname:
        raise ValueError(f"expected mqtt://host:port or mqtts://host:port, got {value!r}")
    tls = u.scheme in ("mqtts", "ssl")
    try:
        port = u.port or (8883 if tls else 1883)
    except ValueError:
        raise ValueError(f"bad port in {value!r}") from None
    return u.hostname, port, tls


def _device_url(value: str) -> str:
    u = urlsplit(value)
    try:
        ok = u.scheme == "tcp" and bool(u.hostname) and u.port is not None
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"expected tcp://host:port, got {value!r}")
    return value


# --- the file --------------------------------------------------------------------------


def load(path: Path | str) -> GatewayConfig:
    path = Path(path).expanduser().absolute()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    return loads(text, path)


def loads(text: str, path: Path) -> GatewayConfig:
    """Parse config text; relative paths are taken from `path`'s directory."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    r = _Reader(path, text)
    known = {"gateway", "mqtt", "device", "proxy", "claims"}
    for k in doc:
        if k not in known:
            line = r.lines.table(k) or r.lines.table(k, 0) or r.lines.key("", -1, k)
            raise r.error(line, f"unknown section [{k}] (known: {', '.join(sorted(known))})")
    if "gateway" not in doc:
        raise r.error(0, "missing section [gateway]")
    if "mqtt" not in doc:
        raise r.error(0, "missing section [mqtt]")

    g = _Table(r, "gateway", doc["gateway"])
    key = g.path("key")
    passphrase_file = g.path("passphrase_file", None)
    community = g.get("community", str, check=_community)
    outbox = g.path("outbox")
    outbox_max = g.get("outbox_max_readings", int, DEFAULT_OUTBOX_MAX_READINGS,
                       check=_positive_int)
    status_interval = g.duration("status_interval", 5.0)
    metrics = g.get("metrics", str, None, check=_host_port)
    log_level = g.get("log_level", str, "info",
                      check=_one_of("debug", "info", "warning", "error"))
    g.done()

    m = _Table(r, "mqtt", doc["mqtt"])
    host, port, tls = m.get("url", str, check=_mqtt_url)
    password = m.get("password", str, None)
    password_file = m.path("password_file", None)
    if password is not None and password_file is not None:
        raise m.fail("password_file", "give password or password_file, not both")
    if password_file is not None:
        try:
            password = password_file.read_text().rstrip("\n")
        except OSError as exc:
            raise m.fail("password_file", f"cannot read {password_file}: {exc.strerror}") from None
    cert, ckey = m.path("cert", None), m.path("key", None)
    if (cert is None) != (ckey is None):
        raise m.fail("cert" if cert is None else "key",
                     "a client certificate needs both cert and key")
    ca = m.path("ca", None)
    mqtt = MqttConfig(
        host=host, port=port, tls=tls or ca is not None or cert is not None,
        ca=ca, cert=cert, key=ckey,
        username=m.get("username", str, None),
        password=password,
        client_id=m.get("client_id", str, None, check=_name),
        keepalive_s=m.duration("keepalive", 30.0),
        max_inflight=m.get("max_inflight", int, 500, check=_positive_int),
        reconnect_min_s=m.duration("reconnect_min", 1.0),
        reconnect_max_s=m.duration("reconnect_max", 60.0),
    )
    m.done()

    raw_devices = doc.get("device", [])
    if not isinstance(raw_devices, list):
        raise r.error(r.lines.table("device"), "devices are [[device]] tables (double brackets)")
    devices: list[DeviceConfig] = []
    for i, raw in enumerate(raw_devices):
        devices.append(_device(_Table(r, "device", raw, i)))
    seen: dict[str, int] = {}
    for d in devices:
        if d.name in seen:
            raise r.error(d.line, f"[[device]] name {d.name!r} is already used "
                                  f"at line {seen[d.name]}")
        seen[d.name] = d.line

    raw_proxies = doc.get("proxy", [])
    if not isinstance(raw_proxies, list):
        raise r.error(r.lines.table("proxy"), "proxies are [[proxy]] tables (double brackets)")
    proxies: list[ProxyConfig] = []
    for i, raw in enumerate(raw_proxies):
        p = _Table(r, "proxy", raw, i)
        lhost, lport = p.get("listen", str, check=_host_port)
        dev = p.get("device", str)
        target = next((d for d in devices if d.name == dev), None)
        if target is None:
            raise p.fail("device", f"no [[device]] named {dev!r}")
        if target.spec.driver not in ("sunspec", "profile"):
            raise p.fail("device", f"device {dev!r} does not speak Modbus "
                                   f"(driver {target.spec.driver})")
        proxies.append(ProxyConfig(
            host=lhost, port=lport, device=dev,
            writes=p.get("writes", bool, False),
            cache_age_s=p.get("cache_age", (str, int, float), 1.0,
                              check=lambda v: 0.0 if v in (0, "0", "0s") else parse_duration(v)),
        ))
        p.done()

    claims = ClaimsConfig()
    if "claims" in doc:
        c = _Table(r, "claims", doc["claims"])
        interval = c.duration("interval", 900.0)
        if interval < 60 or interval % 60:
            raise c.fail("interval", "must be a whole number of minutes")
        period = c.get("period", str, "daily", check=_one_of("daily", "hourly"))
        if (86400 if period == "daily" else 3600) % int(interval):
            raise c.fail("interval", f"must divide the {period} period evenly")
        claims = ClaimsConfig(
            enabled=c.get("enabled", bool, True),
            period=period,
            timezone=c.get("timezone", str, "local", check=_timezone),
            interval_s=int(interval),
        )
        c.done()

    return GatewayConfig(
        path=path, key=key, passphrase_file=passphrase_file, community=community,
        outbox=outbox, outbox_max_readings=outbox_max, mqtt=mqtt, devices=tuple(devices),
        proxies=tuple(proxies), claims=claims, status_interval_s=status_interval,
        metrics=metrics, log_level=log_level,
    )


def _timezone(value: str) -> str:
    if value == "local":
        return value
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (an IANA name like \"Europe/Paris\", "
                         "or \"local\")") from None
    return value


def _device(t: _Table) -> DeviceConfig:
    name = t.get("name", str, check=_name)
    driver = t.get("driver", str, check=_one_of(*DRIVERS))
    url = t.get("url", str, None, check=_device_url)
    port = t.get("port", str, None)
    if driver in SERIAL_DRIVERS:
        if url is not None:
            raise t.fail("url", f"driver {driver} reads a serial port: use port = \"/dev/...\"")
        if port is None:
            raise t.cfg.error(t.cfg.lines.table("device", t.index),
                              f"{t.label} ({name}): driver {driver} needs port = \"/dev/...\"")
    elif (url is None) == (port is None):
        raise t.cfg.error(t.cfg.lines.table("device", t.index),
                          f"{t.label} ({name}): give url = \"tcp://host:port\" (Modbus TCP) "
                          "or port = \"/dev/...\" (Modbus RTU), not both")
    interval = t.duration("interval", 15.0)
    profile = t.get("profile", str, None)
    if driver == "profile" and profile is None:
        raise t.cfg.error(t.cfg.lines.table("device", t.index),
                          f"{t.label} ({name}): driver profile needs profile = \"<name or path>\"")
    if profile is not None and driver != "profile":
        raise t.fail("profile", f"only driver \"profile\" takes a profile (driver is {driver})")
    spec = DeviceSpec(
        name=name,
        driver=driver,
        url=url,
        port=port,
        unit=t.get("unit", int, 1, check=_unit),
        role=t.get("role", str, "grid" if driver in SERIAL_DRIVERS else "production",
                   check=_one_of(*ROLES)),
        profile=profile,
        baudrate=t.get("baudrate", int, None, check=_positive_int),
        mode=t.get("mode", str, None),
        timeout_s=t.duration("timeout", 2.0),
    )
    jitter = t.get("jitter", (str, int, float), None,
                   check=lambda v: 0.0 if v in (0, "0", "0s") else parse_duration(v))
    cfg = DeviceConfig(
        spec=spec,
        interval_s=interval,
        # Default jitter: a tenth of the interval, so gateways sharing a broker and
        # devices sharing a line do not all fire at the same instant.
        jitter_s=interval / 10 if jitter is None else jitter,
        backoff_max_s=t.duration("backoff_max", max(300.0, interval)),
        line=t.cfg.lines.table("device", t.index),
        stale_polls=t.get("stale_polls", int, 10, check=_positive_int),
        rated_power_w=t.get("rated_power", int, None, check=_positive_int),
        asleep_below_w=t.get("asleep_below", int, 50),
    )
    t.done()
    return cfg
