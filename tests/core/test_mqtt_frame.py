"""The MQTT remaining-length decoder the publisher and the ingest worker share."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from quartier.mqtt_frame import packet_span


def encode(body: bytes, header: int = 0x30) -> bytes:
    n, out = len(body), bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            break
    return bytes([header]) + bytes(out) + body


@given(st.lists(st.binary(max_size=300), min_size=1, max_size=5), st.integers(0, 20))
def test_packets_are_found_whole_and_only_whole(bodies: list[bytes], cut: int) -> None:
    stream = b"".join(encode(b) for b in bodies)
    pos = 0
    for body in bodies:
        start, end = packet_span(stream, pos)  # type: ignore[misc]
        assert stream[start:end] == body
        pos = end
    assert packet_span(stream, pos) is None  # nothing after the last packet
    last = encode(bodies[-1])
    if cut < len(last):
        assert packet_span(last[:cut]) is None  # a packet not yet all read


def test_long_lengths_use_several_bytes() -> None:
    body = b"x" * 20_000
    assert packet_span(encode(body)) == (4, 4 + 20_000)
    assert packet_span(b"\x30\xff\xff\xff\xff\x01") is None  # more than 4 length bytes
