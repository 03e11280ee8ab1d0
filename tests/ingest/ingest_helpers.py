"""Gateways that sign readings and claims for the ingest tests, and small waiting helpers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import paho.mqtt.client as mqtt
from coincurve import PrivateKey
from sqlalchemy.engine import Engine

from community import registry
from quartier import claim as cl
from quartier import reading as rd
from quartier.intervals import gateway_period, select_period_readings
from quartier.signing import address_of

COMMUNITY = "test"
T0_MS = 1_700_000_100_000  # a multiple of 900 s


@dataclass
class Gw:
    n: int
    head: rd.ChainHead = field(default_factory=rd.ChainHead)
    sent: list[rd.SignedReading] = field(default_factory=list)
    base_ms: int = T0_MS  # time of seq 1; one reading a minute after it by default

    def __post_init__(self) -> None:
        self.key = PrivateKey(bytes([self.n]) * 32)
        self.address = address_of(self.key)

    def topic(self, kind: str = "reading") -> str:
        return f"quartier/{COMMUNITY}/{self.address}/{kind}"

    def next(self, dev: str = "meter", ts: int | None = None, m: dict[str, int] | None = None,
             **optional: object) -> rd.SignedReading:
        k = self.head.seq
        ts = ts if ts is not None else self.base_ms + 60_000 * k
        m = m if m is not None else {"e_imp_wh": 1000 + 10 * k, "e_exp_wh": 500 + 3 * k, "p_w": 250}
        sr = rd.sign(self.key, rd.next_reading(self.head, self.address, dev, ts, m, **optional))
        self.head = rd.ChainHead(sr.reading.seq, sr.body_hash)
        self.sent.append(sr)
        return sr

    def chain(self, n: int, **kw: object) -> list[rd.SignedReading]:
        return [self.next(**kw) for _ in range(n)]  # type: ignore[arg-type]

    def claim(self, start_s: int, end_s: int, *, tamper: int = 0) -> bytes:
        rs = select_period_readings([s.reading for s in self.sent], start_s, end_s)
        totals = gateway_period(rs, start_s, end_s)
        c = totals.claim(COMMUNITY, self.address, start_s, end_s)
        if tamper:  # a gateway claiming more than its readings show
            c = replace(c, imported_wh=c.imported_wh + tamper)
        return cl.encode_claim_message(c, cl.sign_claim(self.key, c))


def enrol(engine: Engine, gws: list[Gw], role: str = "grid") -> None:
    with engine.begin() as conn:
        if not registry.list_members(conn):
            registry.add_member(conn, "m1", "Member One")
        for g in gws:
            registry.enrol_gateway(conn, g.address, "m1", f"mp-{g.n}", role)


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def publish(port: int, messages: list[tuple[str, bytes]], client_id: str = "test-pub") -> None:
    """Publish at QoS 1 and wait for every PUBACK."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    c.max_inflight_messages_set(100)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        infos = [c.publish(t, p, qos=1) for t, p in messages]
        for i in infos:
            i.wait_for_publish(30)
    finally:
        c.disconnect()
        c.loop_stop()


class Subscriber:
    """Collects what arrives on a topic (e.g. the retained live totals)."""

    def __init__(self, port: int, topic: str) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.c.on_message = lambda _c, _u, m: self.messages.append(m)
        self.c.on_connect = lambda c, *_: c.subscribe(topic, 1)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def prime_session(port: int, client_id: str, group: str = "ingest") -> None:
    """Create a worker's persistent session and shared subscriptions, then leave."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    done = threading.Event()
    c.on_subscribe = lambda *_: done.set()
    c.connect("127.0.0.1", port)
    c.loop_start()
    c.subscribe([(f"$share/{group}/quartier/{COMMUNITY}/+/reading", 1),
                 (f"$share/{group}/quartier/{COMMUNITY}/+/claim", 1)])
    assert done.wait(10), "no SUBACK"
    c.disconnect()
    c.loop_stop()
