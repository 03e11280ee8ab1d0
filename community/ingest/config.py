"""Ingest configuration (TOML), parsed once into typed values.

    [ingest]
    community = "demo"                      # required: topics quartier/<community>/...
    database_url = "sqlite:///quartier.sqlite"  # else --database-url / QUARTIER_DATABASE_URL
    client_id = "ingest-1"                  # stable: the broker keeps this worker's session
    group = "ingest"                        # shared subscription group; "" for none (amqtt)
    interval = "15m"                        # interval length for claims and live intervals
    batch = 500                             # messages per transaction at most
    max_payload = 4096                      # bytes
    future_tolerance = "5m"                 # readings dated later than now + this are refused
    live_every = "5s"                       # retained quartier/<community>/live period

    [mqtt]
    url = "mqtt://127.0.0.1:1883"           # mqtts:// for TLS
    protocol = "3.1.1"                      # or "5" (see docs/ingest.md: in-flight window)
    username = ""
    password = ""
    ca = ""                                 # CA file for mqtts
    cert = ""                               # client certificate and key (mutual TLS)
    key = ""

    [influx]                                # optional export for Grafana
    url = "http://127.0.0.1:8086"
    token = ""
    org = "quartier"
    bucket = "quartier"

Relative paths (sqlite files, certificates) are relative to the configuration file.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from quartier.intervals import DEFAULT_STEP_S


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and key."""


@dataclass(frozen=True, slots=True)
class MqttConfig:
    url: str = "mqtt://127.0.0.1:1883"
    username: str = ""
    password: str = ""
    ca: str = ""
    cert: str = ""
    key: str = ""
    protocol: str = "3.1.1"

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"


@dataclass(frozen=True, slots=True)
class InfluxConfig:
    url: str
    token: str = ""
    org: str = "quartier"
    bucket: str = "quartier"


@dataclass(frozen=True, slots=True)
class IngestConfig:
    community: str
    database_url: str | None = None
    client_id: str = "ingest-1"
    group: str = "ingest"
    step_s: int = DEFAULT_STEP_S
    batch: int = 500
    max_payload: int = 4096
    future_tolerance_s: int = 300
    live_every_s: float = 5.0
    mqtt: MqttConfig = MqttConfig()
    influx: InfluxConfig | None = None


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: object, where: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value.strip())
        if m:
            return float(m.group(1)) * _UNITS[m.group(2)]
    raise ConfigError(f"{where}: {value!r} is not a duration like '900s', '15m', '1h'")


def _table(doc: dict[str, Any], name: str, allowed: set[str], path: Path) -> dict[str, Any]:
    t = doc.get(name, {})
    if not isinstance(t, dict):
        raise ConfigError(f"{path}: [{name}] must be a table")
    unknown = set(t) - allowed
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) in [{name}]: {', '.join(sorted(unknown))} "
                          f"(allowed: {', '.join(sorted(allowed))})")
    return t


def _str(t: dict[str, Any], key: str, where: str, default: str = "") -> str:
    v = t.get(key, default)
    if not isinstance(v, str):
        raise ConfigError(f"{where}.{key}: expected a string, got {v!r}")
    return v


def _int(t: dict[str, Any], key: str, where: str, default: int, lo: int = 1) -> int:
    v = t.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ConfigError(f"{where}.{key}: expected an integer >= {lo}, got {v!r}")
    return v


def _relative(base: Path, value: str) -> str:
    return value if not value or Path(value).is_absolute() else str((base / value).resolve())


def _database_url(base: Path, url: str) -> str:
    # sqlite:///relative.db is relative to the config file, as every path in it.
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        return prefix + str((base / url[len(prefix):]).resolve())
    return url


def load_config(path: str | Path) -> IngestConfig:
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    unknown = set(doc) - {"ingest", "mqtt", "influx"}
    if unknown:
        raise ConfigError(f"{path}: unknown section(s): {', '.join(sorted(unknown))} (allowed: ingest, mqtt, influx)")
    base = path.resolve().parent
    ing = _table(doc, "ingest", {"community", "database_url", "client_id", "group", "interval", "batch",
                                 "max_payload", "future_tolerance", "live_every"}, path)
    community = _str(ing, "community", "ingest")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", community):
        raise ConfigError(f"{path}: ingest.community must be 1-64 letters, digits, '_' or '-', got {community!r}")
    step = parse_duration(ing.get("interval", DEFAULT_STEP_S), "ingest.interval")
    if step < 1 or step != int(step) or 86400 % int(step):
        raise ConfigError(f"{path}: ingest.interval must be a whole number of seconds dividing a day, got {step}")
    m = _table(doc, "mqtt", {"url", "username", "password", "ca", "cert", "key", "protocol"}, path)
    protocol = _str(m, "protocol", "mqtt", "3.1.1")
    if protocol not in ("3.1.1", "5"):
        raise ConfigError(f"{path}: mqtt.protocol must be \"3.1.1\" or \"5\", got {protocol!r}")
    url = _str(m, "url", "mqtt", "mqtt://127.0.0.1:1883")
    if urlsplit(url).scheme not in ("mqtt", "mqtts", "tcp"):
        raise ConfigError(f"{path}: mqtt.url must start with mqtt:// or mqtts://, got {url!r}")
    mqtt_cfg = MqttConfig(url=url, username=_str(m, "username", "mqtt"), password=_str(m, "password", "mqtt"),
                          ca=_relative(base, _str(m, "ca", "mqtt")), cert=_relative(base, _str(m, "cert", "mqtt")),
                          key=_relative(base, _str(m, "key", "mqtt")), protocol=protocol)
    influx = None
    if "influx" in doc:
        i = _table(doc, "influx", {"url", "token", "org", "bucket"}, path)
        influx = InfluxConfig(url=_str(i, "url", "influx"), token=_str(i, "token", "influx"),
                              org=_str(i, "org", "influx", "quartier"), bucket=_str(i, "bucket", "influx", "quartier"))
        if not influx.url:
            raise ConfigError(f"{path}: influx.url is required when [influx] is present")
    db = _str(ing, "database_url", "ingest") or None
    return IngestConfig(
        community=community,
        database_url=_database_url(base, db) if db else None,
        client_id=_str(ing, "client_id", "ingest", "ingest-1"),
        group=_str(ing, "group", "ingest", "ingest"),
        step_s=int(step),
        batch=_int(ing, "batch", "ingest", 500),
        max_payload=_int(ing, "max_payload", "ingest", 4096, lo=256),
        future_tolerance_s=int(parse_duration(ing.get("future_tolerance", 300), "ingest.future_tolerance")),
        live_every_s=parse_duration(ing.get("live_every", 5), "ingest.live_every"),
        mqtt=mqtt_cfg,
        influx=influx,
    )
