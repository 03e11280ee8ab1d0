"""The config file: the minimal example as written, errors that name key and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import ConfigError, loads, parse_duration

MINIMAL = """\
[gateway]
key = "gateway.key"
community = "demo"
outbox = "outbox.sqlite"

[mqtt]
url = "mqtt://127.0.0.1:1883"

[[device]]
name = "inverter"
driver = "sunspec"
url = "tcp://127.0.0.1:1502"
unit = 1
role = "production"
interval = "1s"
"""


def test_minimal_config_works_as_written(tmp_path: Path) -> None:
    cfg = loads(MINIMAL, tmp_path / "gw.toml")
    assert cfg.key == tmp_path / "gateway.key"  # relative to the config file
    assert cfg.outbox == tmp_path / "outbox.sqlite"
    assert cfg.community == "demo"
    assert (cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.tls) == ("127.0.0.1", 1883, False)
    (dev,) = cfg.devices
    assert dev.spec.name == "inverter" and dev.spec.driver == "sunspec"
    assert dev.spec.url == "tcp://127.0.0.1:1502" and dev.spec.unit == 1
    assert dev.spec.role == "production" and dev.interval_s == 1.0
    assert cfg.claims.period == "daily" and cfg.claims.enabled
    assert cfg.metrics is None  # off by default


def test_full_config(tmp_path: Path) -> None:
    text = MINIMAL.replace('url = "mqtt://127.0.0.1:1883"', (
        'url = "mqtts://broker.example:8883"\nca = "ca.pem"\ncert = "gw.pem"\nkey = "gw-key.pem"\n'
        'username = "gw1"\npassword = "secret"\nkeepalive = "20s"\nmax_inflight = 50'
    )) + """
[[device]]
name = "linky"
driver = "tic"
port = "/dev/ttyAMA0"
mode = "standard"
interval = "15s"

[[proxy]]
listen = "127.0.0.1:1503"
device = "inverter"
cache_age = "500ms"

[claims]
period = "hourly"
timezone = "Europe/Paris"
interval = "15m"
"""
    cfg = loads(text, tmp_path / "gw.toml")
    assert cfg.mqtt.tls and cfg.mqtt.ca == tmp_path / "ca.pem" and cfg.mqtt.key == tmp_path / "gw-key.pem"
    assert cfg.mqtt.username == "gw1" and cfg.mqtt.password == "secret"
    assert cfg.mqtt.keepalive_s == 20 and cfg.mqtt.max_inflight == 50
    linky = cfg.devices[1]
    assert linky.spec.port == "/dev/ttyAMA0" and linky.spec.role == "grid"  # meters default to grid
    assert linky.spec.mode == "standard" and linky.interval_s == 15
    (proxy,) = cfg.proxies
    assert (proxy.host, proxy.port, proxy.device, proxy.writes, proxy.cache_age_s) == (
        "127.0.0.1", 1503, "inverter", False, 0.5)
    assert cfg.claims.period == "hourly" and cfg.claims.timezone == "Europe/Paris"
    assert cfg.claims.interval_s == 900


@pytest.mark.parametrize(("edit", "message"), [
    (('interval = "1s"', 'interval = "1 fortnight"'), "gw.toml:15: [[device]] #1 interval"),
    (('unit = 1', 'unit = 1\ncolour = "red"'), "gw.toml:14: [[device]] #1 colour: unknown key"),
    (('unit = 1', 'unit = 300'), "gw.toml:13: [[device]] #1 unit: a Modbus unit id is 0-247"),
    (('driver = "sunspec"', 'driver = "fronius"'), "gw.toml:11: [[device]] #1 driver: 'fronius'"),
    (('role = "production"', 'role = 3'), "gw.toml:14: [[device]] #1 role: expected a string"),
    (('community = "demo"', 'community = "a/b"'), "gw.toml:3: [gateway] community"),
    (('outbox = "outbox.sqlite"', 'outbx = "outbox.sqlite"'), "gw.toml:4: [gateway] outbx: unknown key"),
    (('url = "mqtt://127.0.0.1:1883"', 'url = "http://x"'), "gw.toml:7: [mqtt] url"),
    (('url = "tcp://127.0.0.1:1502"', 'port = "/dev/ttyUSB0"\nurl = "tcp://h:1"'),
     "gw.toml:9: [[device]] #1 (inverter): give url"),
    (('[mqtt]', '[mqttt]'), "gw.toml:6: unknown section [mqttt]"),
])
def test_errors_name_key_and_line(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        loads(MINIMAL.replace(*edit), tmp_path / "gw.toml")
    assert message in str(err.value)


def test_missing_key_and_duplicate_device(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[gateway\]: missing required key 'community'"):
        loads(MINIMAL.replace('community = "demo"\n', ""), tmp_path / "gw.toml")
    dup = MINIMAL + MINIMAL[MINIMAL.index("[[device]]"):]
    with pytest.raises(ConfigError, match=r"gw.toml:16: \[\[device\]\] name 'inverter' is already used"):
        loads(dup, tmp_path / "gw.toml")


def test_proxy_must_name_a_modbus_device(tmp_path: Path) -> None:
    text = MINIMAL + '\n[[proxy]]\nlisten = "127.0.0.1:1503"\ndevice = "nope"\n'
    with pytest.raises(ConfigError, match=r"\[\[proxy\]\] #1 device: no \[\[device\]\] named 'nope'"):
        loads(text, tmp_path / "gw.toml")


def test_serial_driver_needs_port(tmp_path: Path) -> None:
    text = MINIMAL.replace('driver = "sunspec"', 'driver = "tic"')
    with pytest.raises(ConfigError, match="driver tic reads a serial port"):
        loads(text, tmp_path / "gw.toml")


@pytest.mark.parametrize(("text", "seconds"), [
    ("1s", 1), ("500ms", 0.5), ("15m", 900), ("2h", 7200), ("1d", 86400), (3, 3), ("2.5s", 2.5)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@given(st.integers(min_value=1, max_value=10**6), st.sampled_from(["s", "m", "h"]))
def test_durations_scale(n: int, unit: str) -> None:
    assert parse_duration(f"{n}{unit}") == n * {"s": 1, "m": 60, "h": 3600}[unit]


@pytest.mark.parametrize("bad", ["", "1y", "-1s", "0s", True, "s"])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)
