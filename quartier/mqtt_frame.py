"""Where the next MQTT packet lies in a buffer of bytes read ahead from the socket. Pure.

Shared by the gateway's publisher and the ingest worker, which both read ahead so that
one system call brings many packets, then hand paho whole packets.
"""

from __future__ import annotations


def packet_span(buf: bytes | bytearray, pos: int = 0) -> tuple[int, int] | None:
    """(start, end) of the body of the packet whose fixed header byte is at `pos`, when
    `buf` holds all of it, else None. The remaining length takes 1 to 4 bytes of 7 bits
    (MQTT 3.1.1 §2.2.3)."""
    end = len(buf)
    at = pos + 1
    length, shift = 0, 0
    while at < end and shift <= 21:
        b = buf[at]
        at += 1
        length |= (b & 0x7F) << shift
        if not b & 0x80:
            return (at, at + length) if at + length <= end else None
        shift += 7
    return None
