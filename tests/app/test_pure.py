"""The app's pure parts: language negotiation and the catalogue, safe redirects, the login
throttle, prices at the community rate, number formats, the SVG chart; and the CLI."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from community.app import charts, i18n, security
from community.app.fmt import Formatter
from community.app.services import Unit, price_in

TEMPLATES = Path(__file__).resolve().parents[2] / "community" / "app"


def test_negotiate_follows_quality_values() -> None:
    assert i18n.negotiate("fr-FR,fr;q=0.9,en;q=0.8") == "fr"
    assert i18n.negotiate("en-GB,en;q=0.9", default="fr") == "en"
    assert i18n.negotiate("de-DE,en;q=0.5,fr;q=0.7") == "fr"
    assert i18n.negotiate("de-DE,es;q=0.5", default="en") == "en"
    assert i18n.negotiate("fr;q=0,en") == "en"
    assert i18n.negotiate("en;q=abc,fr;q=0.1") == "fr"
    assert i18n.negotiate(None, default="en") == "en"


@given(st.text(max_size=60))
def test_negotiate_always_picks_a_supported_language(header: str) -> None:
    assert i18n.negotiate(header) in i18n.LANGS


def test_every_key_the_code_uses_is_in_the_catalogue() -> None:
    used: set[str] = set()
    for path in TEMPLATES.rglob("*"):
        if path.suffix in (".py", ".html"):
            text = path.read_text(encoding="utf-8")
            used |= set(re.findall(r"""\bt\(\s*["']([a-z_]+\.[a-z_.]+)["']""", text))
            used |= set(re.findall(r"""ServiceError\(\s*["']([a-z_]+\.[a-z_.0-9]+)["']""", text))
    assert used, "no keys found: the pattern is wrong"
    missing = sorted(k for k in used if not k.endswith(".") and k not in i18n.CATALOGUE["en"])
    assert not missing
    # French may leave out only what reads the same (units, the app's name)
    same = {k for k, v in i18n.CATALOGUE["en"].items() if k not in i18n.CATALOGUE["fr"]}
    assert same <= {"app.title", "common.none", "unit.KWH"}


def test_translate_formats_and_falls_back() -> None:
    assert i18n.translate("fr", "home.welcome", name="Léa") == "Bonjour Léa"
    assert i18n.translate("fr", "unit.KWH") == "kWh"
    assert i18n.translate("xx", "nav.home") == "Home"
    assert i18n.translate("en", "no.such.key") == "no.such.key"


def test_numbers_read_as_people_write_them() -> None:
    assert Formatter("fr").num(12345.5) == "12\u202f345,5"
    assert Formatter("en").num(12345.5) == "12,345.5"
    assert Formatter("en").amount("HOUR", -150) == "-1.50\u00a0h"
    assert Formatter("fr").amount("KWH", 100_000, signed=True) == "+100,000\u00a0kWh"
    assert Formatter("en").pct(None) == "—"


@given(st.text(max_size=80))
def test_safe_next_never_leaves_the_site(target: str) -> None:
    out = security.safe_next(target)
    assert out.startswith("/") and not out.startswith("//")
    assert "\\" not in out and not any(ord(c) < 0x20 for c in out)


def test_safe_next_keeps_local_paths() -> None:
    assert security.safe_next("/market?x=1#top") == "/market?x=1#top"
    for bad in ("//evil", "/\\evil", "https://evil", "evil", "/\tevil", " /x"):
        assert security.safe_next(bad) == "/"


def test_throttle_window_and_limits() -> None:
    th = security.LoginThrottle(max_failures=3, window_s=60, address_factor=2)
    keys = ["user:ann", "ip:1.2.3.4"]
    for t in (0, 1, 2):
        assert th.retry_after(keys, t) == 0
        th.failed(keys, t)
    assert th.retry_after(keys, 3) == 57  # the first failure leaves the window at 60
    assert th.retry_after(["user:bob", "ip:1.2.3.4"], 3) == 0  # the address allows 6
    assert th.retry_after(keys, 60.5) == 0
    th.failed(keys, 61)
    th.succeeded(keys)
    assert th.retry_after(keys, 62) == 0


def test_passwords() -> None:
    h = security.hash_password("long enough")
    assert h.startswith("$argon2id$")
    assert security.verify_password(h, "long enough")
    assert not security.verify_password(h, "long enougH")
    assert not security.verify_password(None, "not a password of anyone")
    assert not security.verify_password("garbage", "x")


RATES = {"KWH": Unit("KWH", 1_000, 0), "HOUR": Unit("HOUR", 100_000, 0), "KG": Unit("KG", 10_000, 0)}


def test_price_at_the_community_rate() -> None:
    assert price_in(100_000, RATES["KWH"], RATES["HOUR"]) == 100  # 100 kWh = 1.00 h
    assert price_in(1_000, RATES["KG"], RATES["HOUR"]) == 10  # 1 kg = 0.10 h
    assert price_in(100, RATES["HOUR"], RATES["KWH"]) == 100_000
    assert price_in(1, RATES["KWH"], RATES["HOUR"]) == 1  # rounded up: never below value


@given(st.integers(1, 10**9), st.sampled_from(list(RATES)), st.sampled_from(list(RATES)))
def test_price_is_the_value_rounded_up(quantity: int, unit: str, pay: str) -> None:
    from community.app.fmt import unit_scale

    exact = Fraction(quantity * RATES[unit].wh_per_unit * unit_scale(pay),
                     unit_scale(unit) * RATES[pay].wh_per_unit)
    got = price_in(quantity, RATES[unit], RATES[pay])
    assert exact <= got < exact + 1


def test_chart_is_accessible_svg() -> None:
    svg = charts.line_chart([charts.Series("P", [0, 1.5, 3], "prod"), charts.Series("C", [1, 1, 1], "cons")],
                            ["00:00", "00:15", "00:30"], title="Last <24> h", desc="d", unit="kW")
    assert svg.startswith('<svg class="chart"') and 'role="img"' in svg
    assert "<title id=\"chart-title\">Last &lt;24&gt; h</title>" in svg
    assert svg.count("<polyline") == 2
    assert charts.line_chart([], [], title="t", desc="d", unit="kW").endswith("</svg>")


def test_cli_account_add_and_list(tmp_path: Path) -> None:
    from quartier.cli import app

    url = f"sqlite:///{tmp_path}/q.sqlite"
    runner = CliRunner()
    r = runner.invoke(app, ["app", "account", "add", "auditor", "--database-url", url, "--role", "operator",
                            "--password-stdin"], input="a long password\n")
    assert r.exit_code == 0, r.output
    assert "account auditor (operator) created" in r.output
    r = runner.invoke(app, ["app", "account", "add", "ghost", "--database-url", url, "--member", "nobody",
                            "--password-stdin"], input="a long password\n")
    assert r.exit_code == 2 and "no member 'nobody'" in r.output
    r = runner.invoke(app, ["app", "account", "add", "short", "--database-url", url, "--role", "board",
                            "--password-stdin"], input="short\n")
    assert r.exit_code == 2 and "at least 8 characters" in r.output
    r = runner.invoke(app, ["app", "account", "list", "--database-url", url])
    assert r.output.startswith("auditor\toperator\t-")
    r = runner.invoke(app, ["app", "serve", "--help"])
    assert "--database-url" in r.output and "--port" in r.output
