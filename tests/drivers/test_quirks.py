"""Vendor quirks: the shipped files parse and each corrects what its source reports;
every correction kind works; a quirk only applies to the devices it names."""

from __future__ import annotations

import struct
from fractions import Fraction

import pytest
import sunspec2.device as ssdevice

from gateway.drivers import sunspec
from gateway.drivers.quirk import QuirkError, corrections_for, load_quirks, parse_quirk
from gateway.drivers.sunspec import Identity


def regs_of(model_id: int, values: dict[str, object]) -> list[int]:
    m = ssdevice.Model(model_id)
    for k, v in values.items():
        getattr(m, k).value = v
    mb = m.get_mb()
    return list(struct.unpack(f">{len(mb) // 2}H", mb))


def ident(mn: str, md: str, vr: str = "1.0") -> Identity:
    return Identity(mn, md, vr, "123")


def test_shipped_quirks_parse_and_cite_a_public_source() -> None:
    from importlib import resources

    quirks = load_quirks()
    assert len(quirks) >= 3
    folder = resources.files("gateway.drivers") / "quirks"
    for q in quirks:
        text = (folder / f"{q.name}.toml").read_text()
        assert "https://" in text and text.lstrip().startswith("#"), q.name


def test_kostal_plenticore_power_factor_fraction_becomes_percent() -> None:
    # as in the dump of evcc-io/evcc#10912: PF 1.00 given as 1000 with PF_SF -3
    regs = regs_of(103, {"W": 47, "W_SF": 0, "PF": 1000, "PF_SF": -3, "WH": 37325890,
                         "WH_SF": 0})
    plain = sunspec.scaled_points(103, [(0, regs)])
    assert plain["PF"] == 1
    corr, names = corrections_for(ident("KOSTAL", "PLENTICORE plus7"), 103)
    assert names == ["kostal-plenticore-pf-fraction"]
    fixed = sunspec.scaled_points(103, [(0, regs)], corr)
    assert fixed["PF"] == 100 and fixed["W"] == 47 and fixed["WH"] == 37325890


def test_kostal_smart_meter_negative_export_counter() -> None:
    regs = regs_of(213, {"W": -812.0, "TotWhImp": 4567890.0, "TotWhExp": -1234567.0})
    assert sunspec.decode_model(213, regs)["e_exp_wh"] == -1234567
    corr, names = corrections_for(ident("KOSTAL", "KOSTAL Smart Energy Meter"), 213)
    assert names == ["kostal-ksem-export-negative"]
    values = sunspec.decode_model(213, regs, corr)
    assert values["e_exp_wh"] == 1234567 and values["e_imp_wh"] == 4567890
    assert values["p_w"] == -812


def test_solaredge_single_phase_voltage_taken_from_ppvphab() -> None:
    # as in the dump of evcc-io/evcc#1267: PPVphAB 234.20, PhVphA not implemented
    regs = regs_of(101, {"A": 165, "A_SF": -2, "PPVphAB": 23420, "V_SF": -2, "W": 380,
                         "W_SF": 0, "WH": 1923941, "WH_SF": 0, "Hz": 50030, "Hz_SF": -3})
    assert "v_dv" not in sunspec.decode_model(101, regs)
    corr, names = corrections_for(ident("SolarEdge", "SE5000H-RW000BNN", "0004.001"), 101)
    assert names == ["solaredge-single-phase-voltage"]
    values = sunspec.decode_model(101, regs, corr)
    assert values["v_dv"] == 2342 and values["p_w"] == 380 and values["f_mhz"] == 50030


def test_quirks_do_not_touch_other_devices() -> None:
    assert corrections_for(ident("Fronius", "Symo 8.2-3-M"), 103) == ({}, [])
    assert corrections_for(ident("KOSTAL", "PLENTICORE plus7"), 113)[1] == []  # other model
    assert corrections_for(None, 103) == ({}, [])


QUIRK = """
# Source: https://example.org/a-field-report (synthetic, for the test)
[match]
manufacturer = "ACME"
model = "Sun*"
firmware = ">=2.1, <3"
models = [103]

[[correct]]
point = "WH"
{correction}
"""


@pytest.mark.parametrize(
    ("correction", "wh_regs", "wh_sf", "want"),
    [
        ("mul = 1000", (0, 12345), 0, 12_345_000),  # an energy register in kWh
        ("sf = 0", (0, 12345), 3, 12345),  # a scale factor register that lies
        ('word_order = "little"', (0x5678, 0x1234), 0, 0x12345678),  # low word first
        ("offset = 2", (0, 0), 0, 777),  # the counter two registers further (WH_SF's place+)
    ],
)
def test_each_correction_kind(correction: str, wh_regs: tuple[int, int], wh_sf: int,
                              want: int) -> None:
    q = parse_quirk("acme", QUIRK.format(correction=correction))
    regs = regs_of(103, {"W": 10, "W_SF": 0, "WH_SF": wh_sf})
    regs[24], regs[25] = wh_regs
    if "offset" in correction:
        regs[27] = 777  # the vendor's counter sits two registers further, at 26..27
    corr, names = corrections_for(ident("acme", "SunBox 5", "2.4.0"), 103, (q,))
    assert names == ["acme"]
    assert sunspec.decode_model(103, regs, corr)["e_prod_wh"] == want


def test_firmware_range() -> None:
    q = parse_quirk("acme", QUIRK.format(correction="mul = 1000"))
    assert q.matches(ident("ACME", "SunBox", "2.1"), 103)
    assert q.matches(ident("ACME", "SunBox", "V2.10.3"), 103)
    assert not q.matches(ident("ACME", "SunBox", "3.0.0"), 103)
    assert not q.matches(ident("ACME", "SunBox", "2.0.9"), 103)
    assert not q.matches(Identity("ACME", "SunBox", None, None), 103)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[match]\nmanufacturer = 'x'\nmodels = [103]\n", "no [[correct]]"),
        ("[match]\nmanufacturer = 'x'\nmodels = [999]\n[[correct]]\npoint='W'\n", "999"),
        ("[match]\nmanufacturer = 'x'\nmodels = [103]\n[[correct]]\npoint='Nope'\n", "Nope"),
        ("[match]\nmanufacturer='x'\nmodels=[103]\n[[correct]]\npoint='W'\ndiv=0\n", "div"),
        ("[match]\nmanufacturer='x'\nmodels=[103]\nfirmware='~2'\n[[correct]]\npoint='W'\n",
         "firmware"),
        ("[match]\nmanufacturer='x'\nmodels=[103]\n[[correct]]\npoint='W'\nscale=2\n", "scale"),
        ("not toml [", "quirk bad"),
    ],
)
def test_bad_quirk_files_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(QuirkError) as info:
        parse_quirk("bad", text)
    assert message in str(info.value)


def test_scaled_points_are_exact_fractions() -> None:
    regs = regs_of(103, {"W": 12345, "W_SF": -2})
    assert sunspec.scaled_points(103, [(0, regs)])["W"] == Fraction(12345, 100)
