"""The MQTT side of ingest: paho-mqtt 2, QoS 1, persistent session, ack after commit.

The worker drives paho's socket itself (paho's external event loop: `loop_read`,
`loop_write`, `loop_misc`) so that it can drain everything the broker has sent, verify
it, store it in ONE transaction, and only then acknowledge each message (`manual_ack`).
A crash before the commit loses nothing: the broker still holds the unacknowledged
messages in the worker's persistent session and delivers them again; the store is
idempotent, so a message redelivered after the commit is a counted duplicate.

The broker bounds the unacknowledged messages in flight to a worker, hence a batch: with
MQTT 3.1.1 (the default: paho decodes MQTT 5 properties of every message at a cost that
shows at 10k messages/s) by its own setting (Mosquitto: `max_inflight_messages`, 20 by
default, set it to the batch size); with MQTT 5 by the Receive Maximum the worker
announces.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import select
import signal
import ssl
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy.engine import Engine

from community.ingest import pipeline as pl
from community.ingest import store
from community.ingest.config import IngestConfig
from quartier.mqtt_frame import packet_span

log = logging.getLogger("quartier.ingest")

SESSION_EXPIRY_S = 7 * 24 * 3600  # the broker keeps a stopped worker's messages for a week
REGISTRY_REFRESH_S = 10.0
PENDING_CLAIMS_EVERY_S = 30.0
RECONNECT_MAX_S = 30.0
SHUTDOWN_GRACE_S = 30.0


class _ReadAhead:
    """paho's socket, read ahead: one recv brings every packet waiting.

    paho reads a packet in three or more recv calls (type, each length byte, the rest):
    at thousands of messages a second those system calls are a large part of ingest.
    `pending()` tells paho (and the worker's loop) that bytes wait in the buffer rather
    than in the kernel, as SSL sockets do.
    """

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buf = b""
        self._pos = 0

    def recv(self, bufsize: int) -> bytes:
        buf, pos = self._buf, self._pos
        if pos >= len(buf):
            data = self._sock.recv(65536)
            if len(data) <= bufsize:
                return bytes(data)
            self._buf, pos = data, 0
            buf = data
        end = pos + bufsize
        self._pos = end
        return buf[pos:end]

    def take_packet(self) -> tuple[int, bytes] | None:
        """(fixed header byte, rest) of the next MQTT packet when the buffer holds all of
        it, else None (paho then reads it piecewise through `recv`)."""
        buf, pos = self._buf, self._pos
        span = packet_span(buf, pos)
        if span is None:
            return None
        self._pos = span[1]
        return buf[pos], buf[span[0]:span[1]]

    def pending(self) -> int:
        inner = getattr(self._sock, "pending", None)
        return len(self._buf) - self._pos + (inner() if inner is not None else 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class Received:
    """A PUBLISH as the worker needs it (paho's MQTTMessage costs more to build)."""

    __slots__ = ("mid", "payload", "qos", "topic")

    def __init__(self, topic: str, payload: bytes, mid: int, qos: int) -> None:
        self.topic = topic
        self.payload = payload
        self.mid = mid
        self.qos = qos


class _Client(mqtt.Client):
    deliver: Callable[[Any], None]  # the worker's inbox.append

    def _create_socket(self) -> Any:
        sock = super()._create_socket()
        return sock if self._transport == "websockets" else _ReadAhead(sock)

    def _packet_read(self) -> Any:
        # A whole packet already read ahead is handled at once, not byte by byte.
        sock = self._sock
        if self._in_packet["command"] == 0 and isinstance(sock, _ReadAhead):
            frame = sock.take_packet()
            if frame is not None:
                command, body = frame
                self._in_packet = {"command": command, "have_remaining": 1,
                                   "remaining_count": [], "remaining_mult": 1,
                                   "remaining_length": len(body), "packet": body,  # type: ignore[typeddict-item]
                                   "to_process": 0, "pos": 0}
                try:
                    rc = self._packet_handle()
                except MalformedPacket:
                    rc = mqtt.MQTT_ERR_PROTOCOL
                self._in_packet = {"command": 0, "have_remaining": 0, "remaining_count": [],
                                   "remaining_mult": 1, "remaining_length": 0,
                                   "packet": bytearray(b""), "to_process": 0, "pos": 0}
                with self._msgtime_mutex:
                    self._last_bytes_received = mqtt.time_func()
                return rc
        return super()._packet_read()

    def _handle_publish(self) -> Any:
        # MQTT 3.1.1 QoS 1 (every reading and claim): topic, message id, payload, straight
        # into the worker's inbox (its on_message does nothing else, and it adds no
        # per-topic callbacks). Same effects as paho's handler with manual_ack, without
        # its log formatting and callback lookup.
        command = self._in_packet["command"]
        packet = self._in_packet["packet"]
        if self._protocol != mqtt.MQTTv311 or (command & 0x06) != 0x02 or len(packet) < 4:
            return super()._handle_publish()
        n = (packet[0] << 8) | packet[1]
        if len(packet) < n + 4:
            return super()._handle_publish()  # paho reports the malformed packet
        topic = packet[2:2 + n].decode("utf-8", "replace")
        self.deliver(Received(topic, bytes(packet[n + 4:]), (packet[n + 2] << 8) | packet[n + 3], 1))
        return mqtt.MQTT_ERR_SUCCESS


    def ack_many(self, mids: list[int]) -> None:
        """`ack(mid, 1)` for each message id, queued as one write (MQTT 3.1.1 PUBACKs are
        4 bytes each: paho would queue and wake itself once per message)."""
        if not mids:
            return
        if self._protocol != mqtt.MQTTv311:
            for mid in mids:
                self.ack(mid, 1)
            return
        packet = b"".join(_PUBACK.pack(0x40, 2, mid) for mid in mids)
        self._out_packet.append({"command": 0x40, "mid": 0, "qos": 0, "pos": 0,
                                 "to_process": len(packet), "packet": packet, "info": None})


_PUBACK = struct.Struct(">BBH")


class IngestWorker:
    """One ingest process: subscribe, classify, commit, ack, publish live totals."""

    def __init__(self, config: IngestConfig, engine: Engine,
                 on_commit: Callable[[store.BatchOutcome], None] | None = None) -> None:
        self.config = config
        self.engine = engine
        self.topics = pl.Topics(config.community)
        self.on_commit = on_commit
        self.inbox: list[Any] = []  # Received, or paho's MQTTMessage (MQTT 5, QoS 0/2)
        self.stopping = False
        self.connected = False
        self.subscribed = False
        self.totals = {"accepted": 0, "duplicates": 0, "quarantined": 0, "batches": 0}
        self._gateways: dict[str, pl.GatewayState] = {}
        self._gateways_at = 0.0
        self._gateways_loaded = 0.0  # when the registry was last read
        self._registry_warned = 0.0
        self._next_live = 0.0
        self._next_pending = time.monotonic() + PENDING_CLAIMS_EVERY_S
        self.client = self._make_client()
        self._generation = 0
        self._abandon = False
        self._inflight = 0
        self._jobs: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._done: queue.Queue[Any] = queue.Queue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)

    # --- MQTT ---------------------------------------------------------------------------

    def _make_client(self) -> _Client:
        m = self.config.mqtt
        self.v5 = m.protocol == "5"
        c = _Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.config.client_id,
                    protocol=mqtt.MQTTv5 if self.v5 else mqtt.MQTTv311,
                    clean_session=None if self.v5 else False, manual_ack=True)
        c.deliver = self._received
        if m.username:
            c.username_pw_set(m.username, m.password or None)
        if m.tls:
            c.tls_set(ca_certs=m.ca or None, certfile=m.cert or None, keyfile=m.key or None,
                      cert_reqs=ssl.CERT_REQUIRED)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        # Queue outgoing packets (acks) and write them in one go after a batch.
        c.on_socket_register_write = lambda *_: None
        return c

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        if rc.is_failure:
            log.error("broker %s refused the connection: %s", self.config.mqtt.url, rc)
            return
        self.connected = True
        topics = self.topics.subscriptions(self.config.group)
        if self.v5:
            client.subscribe([(t, mqtt.SubscribeOptions(qos=1)) for t in topics])
        else:
            client.subscribe([(t, 1) for t in topics])
        log.info("connected to %s as %s, subscribed to %s", self.config.mqtt.url,
                 self.config.client_id, ", ".join(topics))

    def _on_subscribe(self, *_: Any) -> None:
        self.subscribed = True

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        self.connected = self.subscribed = False
        if not self.stopping:
            log.warning("disconnected from %s: %s", self.config.mqtt.url, rc)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.inbox.append(msg)

    def _received(self, msg: Received) -> None:
        self.inbox.append(msg)

    def connect(self) -> None:
        m = self.config.mqtt
        if not self.v5:
            self.client.connect(m.host, m.port, keepalive=30)
            return
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = min(2 * self.config.batch, 65535)
        self.client.connect(m.host, m.port, keepalive=30, clean_start=False, properties=props)

    # --- the loop -----------------------------------------------------------------------

    def gateways(self, force: bool = False) -> dict[str, pl.GatewayState]:
        now = time.monotonic()
        if force and now - self._gateways_at < 1.0:
            force = False  # unknown senders must not make us hammer the registry
        if force or now - self._gateways_at > REGISTRY_REFRESH_S:
            try:
                with self.engine.connect() as conn:
                    self._gateways = store.load_gateways(conn)
                    conn.rollback()
            except Exception as exc:
                if not self._gateways_at:
                    raise  # never loaded: nothing to judge readings by
                # The database is down: judge by the registry loaded before the outage
                # (enrolments and revocations need the database too), try again in a second.
                # Judging without it would quarantine every reading of the outage.
                if now - self._registry_warned > REGISTRY_REFRESH_S:
                    log.warning("cannot refresh the gateway registry (%s); using the one loaded "
                                "%.0f s ago", exc, now - self._gateways_loaded)
                    self._registry_warned = now
                self._gateways_at = now - REGISTRY_REFRESH_S + 1.0
                return self._gateways
            self._gateways_at = self._gateways_loaded = now
        return self._gateways

    def classify(self, msg: pl.Message, now: int) -> pl.Verdict:
        try:
            v = pl.classify(msg, self.topics, self.gateways(), now, max_payload=self.config.max_payload,
                            future_tolerance_ms=self.config.future_tolerance_s * 1000)
            if isinstance(v, pl.Rejected) and v.reason == pl.UNKNOWN_GATEWAY:
                v = pl.classify(msg, self.topics, self.gateways(force=True), now,
                                max_payload=self.config.max_payload,
                                future_tolerance_ms=self.config.future_tolerance_s * 1000)
            return v
        except Exception as exc:  # a message must never stop ingest; keep it for a person
            log.exception("unexpected error classifying a message on %s", msg.topic)
            return pl.Rejected("internal_error", f"{type(exc).__name__}: {exc}")

    def verdicts(self, batch: list[Any], now: int) -> list[tuple[pl.Message, pl.Verdict]]:
        items = []
        classify, message = self.classify, pl.Message
        for m in batch:
            payload = m.payload
            msg = message(m.topic, payload if type(payload) is bytes else bytes(payload), m.mid)
            items.append((msg, classify(msg, now)))
        return items

    def commit(self, items: list[tuple[pl.Message, pl.Verdict]], now: int) -> store.BatchOutcome:
        """Store one classified batch, retrying as long as the database refuses."""
        delay = 0.1
        while True:
            try:
                return store.commit_batch(self.engine, items, step_s=self.config.step_s, received=now)
            except Exception:  # the database is down or locked: keep the batch, retry
                log.exception("could not store a batch of %d messages; retrying in %.1f s", len(items), delay)
                if self.stopping and self._abandon:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    def acknowledge(self, batch: list[Any], generation: int, outcome: store.BatchOutcome) -> None:
        """Ack a committed batch and count it (main thread: paho is not shared)."""
        # A message id is only meaningful on the connection it came in on; after a
        # reconnect the broker sends unacknowledged messages again (stored: duplicates).
        if generation == self._generation:
            client = self.client
            client.ack_many([m.mid for m in batch if m.qos == 1])
            for m in batch:
                if m.qos == 2:
                    client.ack(m.mid, m.qos)
            client.loop_write()
        self.totals["accepted"] += len(outcome.accepted)
        self.totals["duplicates"] += outcome.duplicates
        self.totals["quarantined"] += len(outcome.rejected)
        self.totals["batches"] += 1
        for rej in outcome.rejected:
            log.info("quarantined (%s): %s", rej.reason, rej.detail)

    def process(self, batch: list[Any]) -> store.BatchOutcome:
        """Classify, commit and ack one batch, in this thread."""
        now = store.now_ms()
        outcome = self.commit(self.verdicts(batch, now), now)
        self._exported(outcome)
        self.acknowledge(batch, self._generation, outcome)
        return outcome

    def _exported(self, outcome: store.BatchOutcome) -> None:
        if self.on_commit is not None:
            try:
                self.on_commit(outcome)
            except Exception:
                log.exception("export after commit failed (the batch is stored)")

    # The committer thread stores batch k while the main thread verifies batch k + 1:
    # SQLite's C code and fsync run without the GIL, so they overlap with verification.

    def _committer(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            batch, generation, items, now = job
            try:
                outcome = self.commit(items, now)
            except Exception:
                log.exception("batch of %d messages not stored (left unacknowledged)", len(items))
                self._done.put(None)
                os.write(self._wake_w, b"x")
                continue
            self._exported(outcome)
            self._done.put((batch, generation, outcome))
            os.write(self._wake_w, b"x")

    def _submit(self, batch: list[Any]) -> None:
        now = store.now_ms()
        items = self.verdicts(batch, now)
        self._inflight += 1
        self._jobs.put((batch, self._generation, items, now))  # blocks when 2 are queued

    def _collect(self) -> None:
        while True:
            try:
                done = self._done.get_nowait()
            except queue.Empty:
                return
            self._inflight -= 1
            if done is not None:
                self.acknowledge(*done)

    def _drain(self) -> None:
        """Read every packet the socket has, up to one batch of messages."""
        limit = self.config.batch
        while len(self.inbox) < limit:
            before = len(self.inbox)
            rc = self.client.loop_read()
            if rc != mqtt.MQTT_ERR_SUCCESS or len(self.inbox) == before:
                # No message came in: either the socket is empty or it was another
                # packet (SUBACK, PINGRESP); one more cheap poll tells which.
                sock = self.client.socket()
                if sock is None or rc != mqtt.MQTT_ERR_SUCCESS:
                    return
                if self._buffered():
                    continue
                r, _, _ = select.select([sock], [], [], 0)
                if not r:
                    return

    def _buffered(self) -> bool:
        """Bytes read ahead from the socket wait in the buffer (select() cannot see them)."""
        sock = self.client._sock
        return isinstance(sock, _ReadAhead) and sock.pending() > 0

    def publish_live(self) -> None:
        with self.engine.connect() as conn:
            totals = store.live_totals(conn, store.now_ms())
            conn.rollback()
        self.client.publish(self.topics.live(), json.dumps(totals, sort_keys=True), qos=1, retain=True)
        self.client.loop_write()

    def _periodic(self) -> None:
        now = time.monotonic()
        if self.connected and self.config.live_every_s > 0 and now >= self._next_live:
            self._next_live = now + self.config.live_every_s
            try:
                self.publish_live()
            except Exception:
                log.exception("could not publish live totals")
        if now >= self._next_pending:
            self._next_pending = now + PENDING_CLAIMS_EVERY_S
            try:
                counts = store.recheck_pending_claims(self.engine, self.config.step_s)
                if counts[store.VERIFIED] or counts[store.CLAIM_MISMATCH]:
                    log.info("pending claims rechecked: %s", counts)
            except Exception:
                log.exception("could not recheck pending claims")

    def run(self, until: Callable[[], bool] | None = None) -> None:
        """Run until stop() or `until()` is true; reconnects with backoff as long as it takes."""
        committer = threading.Thread(target=self._committer, name="ingest-commit", daemon=True)
        committer.start()
        backoff = 0.5
        try:
            while not self.stopping and not (until and until()):
                if self.client.socket() is None:
                    try:
                        self.connect()
                        self._generation += 1
                        backoff = 0.5
                    except OSError as exc:
                        log.warning("cannot reach broker %s (%s); retrying in %.1f s",
                                    self.config.mqtt.url, exc, backoff)
                        time.sleep(backoff)
                        backoff = min(backoff * 2, RECONNECT_MAX_S)
                        continue
                sock = self.client.socket()
                if sock is None:
                    continue
                wlist = [sock] if self.client.want_write() else []
                try:
                    rlist: list[Any] = [sock, self._wake_r]
                    r, w, _ = select.select(rlist, wlist, [], 0 if self._buffered() else 0.5)
                except (OSError, ValueError):
                    r, w = [], []
                if self._wake_r in r:
                    os.read(self._wake_r, 4096)
                    self._collect()
                if w:
                    self.client.loop_write()
                if sock in r or self._buffered():
                    self._drain()
                if self.inbox:
                    batch, self.inbox = self.inbox, []
                    self._submit(batch)
                self._collect()
                self.client.loop_misc()
                self._periodic()
            # Let the batches already verified reach the database and their acks the broker
            # (not forever: a batch the database keeps refusing stays unacknowledged).
            deadline = time.monotonic() + SHUTDOWN_GRACE_S
            while self._inflight and time.monotonic() < deadline:
                self._collect()
                if self._inflight:
                    select.select([self._wake_r], [], [], 0.5)
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
        finally:
            self._abandon = True
            self._jobs.put(None)
            committer.join(30)
            self.close()

    def stop(self, *_: Any) -> None:
        self.stopping = True

    def close(self) -> None:
        self.stopping = True
        # Messages received but not stored stay unacknowledged: the broker keeps them.
        self.inbox = []
        with contextlib.suppress(Exception):
            self.client.disconnect()
            self.client.loop_write()


def run_forever(config: IngestConfig, engine: Engine,
                on_commit: Callable[[store.BatchOutcome], None] | None = None) -> IngestWorker:
    worker = IngestWorker(config, engine, on_commit)
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    worker.run()
    return worker
