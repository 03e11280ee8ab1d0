"""MQTT publisher (paho-mqtt 2): QoS 1, persistent session, retained status, last will.

Thin on purpose: the writer thread decides what to publish and when (see
`gateway.runtime`); this module only talks to the broker and reports PUBACKs.

- Stable client id (`quartier-<address>` unless configured) with clean_session=False, so
  the broker keeps the session across reconnects; paho itself keeps unacknowledged QoS 1
  messages and re-sends them, in order, after a reconnect.
- `quartier/<community>/<address>/status` is retained: "online" on every connect,
  "offline" as the last will and on a clean stop.
- Reconnects forever with exponential backoff (paho's reconnect_delay_set).
- PUBACKs are collected as message ids in a deque; the writer thread takes them. The
  network thread does nothing else, so a slow disk never stalls the MQTT keepalive.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import ssl
import struct
import threading
import time
from typing import Any

from gateway.config import MqttConfig
from quartier.mqtt_frame import packet_span

log = logging.getLogger("quartier.gateway.mqtt")

STATUS_ONLINE = b"online"
STATUS_OFFLINE = b"offline"


def topic_base(community: str, address: str) -> str:
    return f"quartier/{community}/{address}"


class _BufferedSocket:
    """paho's socket, with reads ahead and writes coalesced.

    paho reads a packet in three recv calls (type, length, rest) and writes each packet
    with its own send: on a busy gateway that is four system calls per reading, the
    largest cost after the signature. Here one recv brings every PUBACK waiting, and one
    send per loop carries every packet queued. `pending()` is how paho's loop learns that
    bytes are waiting in a buffer rather than in the kernel (it asks SSL sockets the same).
    Coalesced bytes that are lost with a dropped connection are no loss: a QoS 1 message
    stays in paho's session until its PUBACK and is sent again after reconnecting.
    """

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._rbuf = bytearray()
        self._wbuf = bytearray()

    def recv(self, bufsize: int) -> bytes:
        if not self._rbuf:
            data = self._sock.recv(65536)
            if not data:
                return b""
            self._rbuf += data
        out = bytes(self._rbuf[:bufsize])
        del self._rbuf[:bufsize]
        return out

    def take_packet(self) -> tuple[int, bytearray] | None:
        """(fixed header byte, rest) of the next MQTT packet when the read buffer holds
        all of it, else None (paho then reads it piecewise through `recv`)."""
        buf = self._rbuf
        span = packet_span(buf)
        if span is None:
            return None
        command, body = buf[0], buf[span[0]:span[1]]
        del buf[:span[1]]
        return command, body

    def pending(self) -> int:
        inner = getattr(self._sock, "pending", None)
        return len(self._rbuf) + (inner() if inner is not None else 0)

    def send(self, buf: bytes | bytearray) -> int:
        self._wbuf += buf
        return len(buf)

    def has_output(self) -> bool:
        return bool(self._wbuf)

    def flush(self) -> None:
        while self._wbuf:
            n = self._sock.send(self._wbuf)
            del self._wbuf[:n]

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.flush()  # a clean DISCONNECT must reach the broker before the close
        self._sock.close()

    def fileno(self) -> int:
        return int(self._sock.fileno())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _client_class() -> Any:
    import paho.mqtt.client as mqtt
    from paho.mqtt.client import mqtt_ms_publish as _QUEUED_FOR_RESEND
    from paho.mqtt.client import mqtt_ms_wait_for_puback as _WAIT_FOR_PUBACK
    from paho.mqtt.exception import MalformedPacket

    class Client(mqtt.Client):  # type: ignore[misc]
        on_ack: Any = None  # called with the message id of each PUBACK (network thread)
        batching = False
        def _create_socket(self) -> Any:
            sock = super()._create_socket()
            return sock if self._transport == "websockets" else _BufferedSocket(sock)

        def loop_write(self) -> Any:
            rc = super().loop_write()
            sock = self._sock
            if isinstance(sock, _BufferedSocket):
                try:
                    sock.flush()
                except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    pass  # want_write() stays true: select() says when to go on
                except OSError:
                    pass  # the connection is gone: the next read says so to paho
            return rc

        def _packet_read(self) -> Any:
            # A whole packet already read ahead (PUBACKs come dozens per recv) is handled
            # at once rather than in three reads of the buffer.
            sock = self._sock
            if self._in_packet["command"] == 0 and isinstance(sock, _BufferedSocket):
                frame = sock.take_packet()
                if frame is not None:
                    command, body = frame
                    self._in_packet = {
                        "command": command, "have_remaining": 1, "remaining_count": [],
                        "remaining_mult": 1, "remaining_length": len(body),
                        "packet": body, "to_process": 0, "pos": 0}
                    try:
                        rc = self._packet_handle()
                    except MalformedPacket:
                        rc = mqtt.MQTT_ERR_PROTOCOL
                    self._in_packet = {
                        "command": 0, "have_remaining": 0, "remaining_count": [],
                        "remaining_mult": 1, "remaining_length": 0,
                        "packet": bytearray(b""), "to_process": 0, "pos": 0}
                    with self._msgtime_mutex:
                        self._last_bytes_received = mqtt.time_func()
                    return rc
            return super()._packet_read()

        def _handle_pubackcomp(self, cmd: Any) -> Any:
            # A PUBACK in MQTT 3.1.1 is a message id and nothing else; paho builds a
            # reason code and a properties object for it anyway, which is most of the
            # network thread's time on a busy gateway. Same effects, without them.
            packet = self._in_packet["packet"]
            if cmd != "PUBACK" or self._protocol != mqtt.MQTTv311 or len(packet) != 2 \
                    or self._max_inflight_messages:
                return super()._handle_pubackcomp(cmd)
            mid = (packet[0] << 8) | packet[1]
            with self._out_message_mutex:
                msg = self._out_messages.pop(mid, None)
                if msg is None:
                    return mqtt.MQTT_ERR_SUCCESS
                if msg.qos > 0:
                    self._inflight_messages -= 1
            on_ack = self.on_ack
            if on_ack is not None:
                on_ack(mid)
            msg.info._set_as_published()
            return mqtt.MQTT_ERR_SUCCESS

        def _packet_queue(self, *args: Any, **kwargs: Any) -> Any:
            if not self.batching:
                return super()._packet_queue(*args, **kwargs)
            # Within publish_many: queue only; one wake-up of the network thread after.
            wake, self._sockpairW = self._sockpairW, None
            try:
                return super()._packet_queue(*args, **kwargs)
            finally:
                self._sockpairW = wake

        def publish_qos1_many(self, topic: str, payloads: list[bytes]) -> list[int]:
            """`publish(topic, p, qos=1)` for each payload, in order: the same session
            state (each message kept until its PUBACK, re-sent after a reconnect) and the
            same packets, without paho's per-message generality (properties, QoS 0/2,
            logging, one wake-up per packet). Falls back to `publish` where that differs."""
            if self._protocol != mqtt.MQTTv311 or self._max_inflight_messages \
                    or self._max_queued_messages:
                return [int(self.publish(topic, p, qos=1).mid) for p in payloads]
            topic_bytes = topic.encode("utf-8")
            self._raise_for_invalid_topic(topic_bytes)
            head = struct.pack("!H", len(topic_bytes)) + topic_bytes
            now = mqtt.time_func()  # paho's message clock
            mids: list[int] = []
            out_messages, out_packets = self._out_messages, self._out_packet
            with self._out_message_mutex:
                for payload in payloads:
                    mid = self._mid_generate()
                    if mid in out_messages:
                        mids.append(int(self.publish(topic, payload, qos=1).mid))
                        continue
                    message = mqtt.MQTTMessage(mid, topic_bytes)
                    message.timestamp = now
                    message.payload = payload
                    message.qos = 1
                    out_messages[mid] = message
                    self._inflight_messages += 1
                    message.state = _WAIT_FOR_PUBACK
                    mids.append(mid)
                    if self._sock is None:
                        self._inflight_messages -= 1
                        message.state = _QUEUED_FOR_RESEND
                        message.info.rc = mqtt.MQTT_ERR_NO_CONN
                        continue
                    n = 4 + len(topic_bytes) + len(payload)
                    packet = bytearray(b"\x32")  # PUBLISH, QoS 1
                    while True:  # remaining length, 7 bits per byte (MQTT 3.1.1 §2.2.3)
                        if n < 0x80:
                            packet.append(n)
                            break
                        packet.append((n & 0x7F) | 0x80)
                        n >>= 7
                    packet += head
                    packet += mid.to_bytes(2, "big")
                    packet += payload
                    out_packets.append({"command": 0x30, "mid": mid, "qos": 1, "pos": 0,
                                        "to_process": len(packet), "packet": packet,
                                        "info": message.info})
            return mids

        def want_write(self) -> bool:
            sock = self._sock
            return bool(super().want_write()) or (
                isinstance(sock, _BufferedSocket) and sock.has_output())

    return Client


class Publisher:
    def __init__(self, cfg: MqttConfig, community: str, address: str) -> None:
        import paho.mqtt.client as mqtt

        self.cfg = cfg
        base = topic_base(community, address)
        self.reading_topic = f"{base}/reading"
        self.claim_topic = f"{base}/claim"
        self.status_topic = f"{base}/status"
        self.client_id = cfg.client_id or f"quartier-{address}"
        self.acks: collections.deque[int] = collections.deque()
        self.connected = threading.Event()
        self.connects = 0
        self.disconnects = 0
        self.last_error: str | None = None
        self.last_change = time.time()
        self._wake: threading.Event | None = None

        c = _client_class()(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        # The runtime bounds what is unacknowledged (cfg.max_inflight); paho's own bound
        # would make it walk its whole message list on every PUBACK.
        c.max_inflight_messages_set(0)
        c.max_queued_messages_set(0)
        c.reconnect_delay_set(min_delay=max(1, int(cfg.reconnect_min_s)),
                              max_delay=max(1, int(cfg.reconnect_max_s)))
        c.will_set(self.status_topic, STATUS_OFFLINE, qos=1, retain=True)
        if cfg.username is not None:
            c.username_pw_set(cfg.username, cfg.password)
        if cfg.tls:
            ctx = ssl.create_default_context(
                cafile=str(cfg.ca) if cfg.ca else None)
            if cfg.cert is not None and cfg.key is not None:
                ctx.load_cert_chain(str(cfg.cert), str(cfg.key))
            c.tls_set_context(ctx)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_ack = self.acks.append
        self.client = c

    def set_wake(self, event: threading.Event) -> None:
        """An event set on every PUBACK and (re)connect, to wake the writer thread."""
        self._wake = event

    # --- paho callbacks (network thread) --------------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            self.last_error = f"broker refused the connection: {reason}"
            log.warning("event=mqtt_refused broker=%s:%d reason=%r",
                        self.cfg.host, self.cfg.port, str(reason))
            return
        self.connects += 1
        self.last_change = time.time()
        self.last_error = None
        client.publish(self.status_topic, STATUS_ONLINE, qos=1, retain=True)
        self.connected.set()
        log.info("event=mqtt_connected broker=%s:%d session_present=%s",
                 self.cfg.host, self.cfg.port, bool(flags.session_present))
        if self._wake is not None:
            self._wake.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        if self.connected.is_set():
            self.disconnects += 1
            self.last_change = time.time()
            log.log(logging.WARNING if reason.is_failure else logging.INFO,
                    "event=mqtt_disconnected broker=%s:%d reason=%r",
                    self.cfg.host, self.cfg.port, str(reason))
        self.connected.clear()
        if reason.is_failure:
            self.last_error = str(reason)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any,
                    properties: Any) -> None:
        self.acks.append(mid)

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        self.last_error = f"cannot connect to {self.cfg.host}:{self.cfg.port}"

    # --- used by the runtime ----------------------------------------------------------

    def start(self) -> None:
        self.client.on_connect_fail = self._on_connect_fail
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=int(self.cfg.keepalive_s))
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes) -> int:
        """Queue a QoS 1 message; returns its message id (PUBACK comes as that id)."""
        return int(self.client.publish(topic, payload, qos=1).mid)

    def publish_many(self, topic: str, payloads: list[bytes]) -> list[int]:
        """Queue several QoS 1 messages, in order, waking the network thread once."""
        c = self.client
        c.batching = True
        try:
            mids: list[int] = c.publish_qos1_many(topic, payloads)
        finally:
            c.batching = False
        wake = c._sockpairW
        if wake is not None:
            with contextlib.suppress(BlockingIOError):  # already full of wake-ups
                wake.send(b"0")
        return mids

    def take_acks(self) -> list[int]:
        acks = self.acks
        out = []
        while acks:
            out.append(acks.popleft())
        return out

    def stop(self, timeout_s: float = 2.0) -> None:
        """Publish the retained "offline" status (a clean stop leaves no will), disconnect."""
        if self.connected.is_set():
            info = self.client.publish(self.status_topic, STATUS_OFFLINE, qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout_s)
        self.client.disconnect()
        self.client.loop_stop()
