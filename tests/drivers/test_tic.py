"""Linky TIC decoding: real captures, checksum spaces, typed errors, random bytes."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.drivers import tic
from gateway.drivers.base import DeviceError
from tests.drivers.drivers_helpers import CAPTURES


def frames_of(name: str) -> list[tic.TicFrame]:
    frames, _ = tic.split_frames((CAPTURES / name).read_bytes())
    return [tic.decode_frame(f) for f in frames]


def test_standard_capture_with_space_checksums() -> None:
    (frame,) = frames_of("tic_standard_tempo.tic")
    assert frame.ok, frame.errors
    assert frame.mode == "standard"
    # two groups of this real capture have a space as their checksum character
    raw = (CAPTURES / "tic_standard_tempo.tic").read_bytes()
    assert b"SMAXSN-1\tH200213085118\t09562\t \r" in raw
    assert frame.groups["CCASN-1"].data == "00786"
    assert frame.groups["CCASN-1"].horodatage == "H200214225000"
    assert frame.groups["DATE"].data == ""
    m = frame.measurement()
    assert m.values["e_imp_wh"] == 21849106
    assert m.values["va"] == 2700
    assert m.values["v_dv"] == 2370 and m.values["i_ma_l2"] == 6000
    assert m.meter_id == "041776199277"
    assert m.meter_point == "07361794479930"


def test_historique_tempo_sums_the_six_indexes() -> None:
    (frame,) = frames_of("tic_historique_tempo.tic")
    m = frame.measurement()
    assert m.values["e_imp_wh"] == 1478389 + 1012295 + 134553 + 213701 + 25098 + 6010
    assert m.meter_id == "031961098836" and m.meter_point is None


@pytest.mark.parametrize(
    ("name", "wh", "amps"),
    [("tic_historique_base.tic", 2565285, 2000), ("tic_historique_base_triphase.tic", 13888366, 2000)],
)
def test_historique_base_captures(name: str, wh: int, amps: int) -> None:
    (frame,) = frames_of(name)
    m = frame.measurement()
    assert m.values["e_imp_wh"] == wh and m.values["i_ma"] == amps


def test_bad_checksum_names_group_expected_and_actual() -> None:
    raw = bytearray((CAPTURES / "tic_historique_base.tic").read_bytes())
    i = raw.index(b"PAPP 00420 '") + len(b"PAPP 00420 ")
    raw[i] = ord("*")
    frame = tic.decode_frame(bytes(raw))
    assert not frame.ok
    err = frame.errors[0]
    assert isinstance(err, tic.TicChecksumError) and err.kind == "checksum"
    assert str(err) == "TIC checksum mismatch on group PAPP: expected \"'\", got '*'"
    with pytest.raises(tic.TicChecksumError):
        frame.measurement()


def test_split_frames_resyncs_on_stx_and_drops_aborted_frames() -> None:
    one = (CAPTURES / "tic_historique_base.tic").read_bytes()
    stream = one[20:] + one[:30] + b"\x04" + one + one[:10]
    frames, rest = tic.split_frames(stream)
    assert frames == [one]
    assert rest == one[:10]


groups = st.lists(
    st.tuples(
        st.sampled_from(["BASE", "PAPP", "IINST", "ADCO", "PTEC", "HCHC"]),
        st.text(alphabet="0123456789ABCDEF.-", min_size=1, max_size=12),
    ),
    min_size=1,
    max_size=12,
)


@given(groups, st.sampled_from(["historique", "standard"]))
def test_encode_decode_round_trip(items: list[tuple[str, str]], mode: str) -> None:
    frame = tic.decode_frame(tic.encode_frame(list(items), mode))  # type: ignore[arg-type]
    assert frame.ok, frame.errors
    assert {k: g.data for k, g in frame.groups.items()} == dict(items)


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_random_bytes_never_crash(data: bytes) -> None:
    frames, _ = tic.split_frames(data)
    for raw in [data, *frames]:
        frame = tic.decode_frame(raw)
        with contextlib.suppress(DeviceError):
            frame.measurement()
