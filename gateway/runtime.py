"""The gateway at run time: poll devices, sign, store, publish, claim.

Threads and who owns what:

- Device polls run on apscheduler's thread pool, one job per device at its own interval
  with jitter; `max_instances=1` means a slow device's next poll is skipped, never run
  on top of the previous one. A failing device backs off exponentially (its own polls
  are skipped until the backoff ends) without holding anything the others need. A
  poll only reads the device and queues the measurement.
- One writer thread owns the chain and the outbox: it takes every queued measurement at
  once, signs them in order (seq + 1, prev = hash of the last body), stores them and the
  new chain head in one SQLite transaction (group commit), and only then hands them to
  the publisher. It also deletes acknowledged readings and signs period claims. Readings
  queued but not yet committed when the process dies were never given a seq, so a crash
  loses at most a poll, never a seq.
- paho's network thread talks to the broker and reports PUBACKs.

At most `[mqtt] max_inflight` messages are handed to paho and unacknowledged at any time; the
rest wait in the outbox and are read back from it in seq order as PUBACKs come, so a
broker away for a weekend costs disk, not memory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.claims import ClaimMaker
from gateway.config import DeviceConfig, GatewayConfig
from gateway.drivers.base import Device, DeviceError, Measurement
from gateway.logs import RateLimited, quote
from gateway.outbox import Outbox, OutboxError, Row
from gateway.plausibility import Plausibility
from gateway.publisher import Publisher
from quartier import reading as rd
from quartier.clock import Clock, SystemClock
from quartier.hashing import keccak256
from quartier.keys import GatewayKey
from quartier.signing import sign_hash

log = logging.getLogger("quartier.gateway")

# When readings stream in (many devices, or a backlog), wait this long for more before a
# commit: one fsync per batch instead of one per reading. Invisible at a reading a second.
GROUP_COMMIT_LINGER_S = 0.01
ENERGY_KEYS = ("e_imp_wh", "e_exp_wh", "e_prod_wh")
# Kinds of device error after which a production device that was idle is asleep.
SLEEP_KINDS = frozenset({"timeout", "connection"})
ASLEEP_RETRY_MAX_S = 120.0  # an asleep inverter is tried at least this often
CARRY_INTERVAL_MS = 15 * 60 * 1000  # an asleep inverter's counter is carried once per interval
PUSH_DRIVERS = ("tic", "p1")  # meters that send frames on their own
BAD_FRAME_KINDS = ("checksum", "frame")

DeviceOpener = Callable[[DeviceConfig], Device]





def default_opener(cfg: DeviceConfig) -> Device:
    from gateway.drivers import open_device

    return open_device(cfg.spec)


@dataclass
class DeviceState:
    """What `gateway status` and the metrics say about one device."""

    name: str
    driver: str
    role: str
    interval_s: float
    state: str = "starting"  # starting, ok, failing, asleep
    polls: int = 0
    readings: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    flags: dict[str, int] = field(default_factory=dict)
    last_success_ms: int | None = None
    last_error: str | None = None
    last_error_ms: int | None = None
    backoff_s: float = 0.0
    skipped: int = 0  # polls skipped while backing off
    late: int = 0  # polls that started later than one interval after the previous

    def as_dict(self) -> dict[str, Any]:
        return {
            "driver": self.driver, "role": self.role, "interval_s": self.interval_s,
            "state": self.state, "polls": self.polls, "readings": self.readings,
            "failures": self.failures, "consecutive_failures": self.consecutive_failures,
            "errors": dict(self.errors), "flags": dict(self.flags),
            "last_success_ms": self.last_success_ms, "last_error": self.last_error,
            "last_error_ms": self.last_error_ms, "backoff_s": round(self.backoff_s, 3),
            "late_polls": self.late, "skipped_polls": self.skipped,
        }


@dataclass(frozen=True, slots=True)
class _Item:
    dev: str
    ts: int
    values: dict[str, int]
    flags: tuple[str, ...]
    meter: str | None


class DevicePoller:
    def __init__(self, cfg: DeviceConfig, gw: Gateway) -> None:
        self.cfg = cfg
        self.gw = gw
        self.state = DeviceState(cfg.name, cfg.spec.driver, cfg.spec.role, cfg.interval_s)
        self.device: Device | None = None
        self.check = Plausibility(cfg.stale_polls, cfg.rated_power_w)
        self.lock = threading.Lock()
        self._open_lock = threading.Lock()
        self._backoff_until = 0.0
        self._last_start = 0.0
        self._last_values: dict[str, int] | None = None
        self._last_carry_ms = 0

    def _open(self) -> Device:
        """The device, opened on first use (by a poll or by a proxy, whichever is first)."""
        with self._open_lock:
            if self.device is None:
                try:
                    self.device = self.gw.opener(self.cfg)
                except DeviceError:
                    raise
                except (ValueError, OSError) as exc:
                    raise DeviceError(f"cannot open device: {exc}", kind="config") from None
            return self.device

    def poll(self) -> bool:
        """Read the device once and queue its measurement. True if a reading was queued."""
        if not self.lock.acquire(blocking=False):
            return False  # the previous poll of this device is still running
        try:
            now = time.monotonic()
            if now < self._backoff_until:
                self.state.skipped += 1
                return False
            if self._last_start and now - self._last_start > 2 * self.cfg.interval_s + 1:
                self.state.late += 1
            self._last_start = now
            self.state.polls += 1
            try:
                m = self._open().read()
            except DeviceError as exc:
                self._failed(exc)
                return False
            except Exception as exc:  # a driver bug must not kill the poll job
                self._failed(DeviceError(f"{type(exc).__name__}: {exc}", kind="internal"))
                return False
            self._succeeded(m)
            return True
        finally:
            self.lock.release()

    def _succeeded(self, m: Measurement) -> None:
        ts = self.gw.clock.now_ms()
        values = m.values
        flags = set(m.flags) | set(self.check.check(ts, values, m.meter_id))
        st = self.state
        if st.state in ("failing", "asleep"):
            log.info("event=device_back dev=%s after_failures=%d was=%s",
                     quote(st.name), st.consecutive_failures, st.state)
            self.gw.ratelimit.reset(st.name)
        st.state = "ok"
        st.readings += 1
        st.consecutive_failures = 0
        st.backoff_s = 0.0
        st.last_success_ms = ts
        for f in flags:
            st.flags[f] = st.flags.get(f, 0) + 1
        self._backoff_until = 0.0
        self._last_values = values
        self.gw.submit(_Item(self.cfg.name, ts, values, tuple(sorted(flags)), m.meter_id))

    def _failed(self, exc: DeviceError) -> None:
        st = self.state
        ts = self.gw.clock.now_ms()
        kind = exc.kind
        st.failures += 1
        st.consecutive_failures += 1
        st.errors[kind] = st.errors.get(kind, 0) + 1
        st.last_error = f"{kind}: {exc}"
        st.last_error_ms = ts
        # Exponential backoff from the poll interval, capped. Not for a serial meter whose
        # frames arrive but are bad: it pushes them whether we read or not, reading costs it
        # nothing, and reading at pace is what keeps its error counters exact.
        n = min(st.consecutive_failures - 1, 16)
        backoff = min(self.cfg.interval_s * (2 ** n), self.cfg.backoff_max_s)
        if self.cfg.spec.driver in PUSH_DRIVERS and kind in BAD_FRAME_KINDS:
            backoff = self.cfg.interval_s
        if self._is_asleep(kind):
            if st.state != "asleep":
                log.info("event=device_asleep dev=%s last_p_w=%s", quote(st.name),
                         (self._last_values or {}).get("p_w"))
            st.state = "asleep"
            backoff = min(backoff, max(ASLEEP_RETRY_MAX_S, self.cfg.interval_s))
            self._carry(ts)
        else:
            st.state = "failing"
            level = logging.WARNING if st.consecutive_failures < 3 else logging.ERROR
            self.gw.ratelimit.log(level, st.name, kind, str(exc))
        st.backoff_s = backoff if st.consecutive_failures > 1 else 0.0
        if st.consecutive_failures > 1:
            self._backoff_until = time.monotonic() + backoff - self.cfg.interval_s

    def _is_asleep(self, kind: str) -> bool:
        if self.cfg.spec.role != "production" or kind not in SLEEP_KINDS:
            return False
        last = self._last_values
        if last is None or "e_prod_wh" not in last:
            return False
        return last.get("p_w", 0) <= self.cfg.asleep_below_w

    def _carry(self, ts: int) -> None:
        """While asleep, repeat the production counter once per interval, with zero power,
        so the night's intervals are zero rather than gaps."""
        last = self._last_values
        if last is None or ts // CARRY_INTERVAL_MS == self._last_carry_ms // CARRY_INTERVAL_MS:
            return
        self._last_carry_ms = ts
        values = {k: last[k] for k in ENERGY_KEYS if k in last}
        values["p_w"] = 0
        self.gw.submit(_Item(self.cfg.name, ts, values, ("asleep",), None))

    def close(self) -> None:
        if self.device is not None:
            with contextlib.suppress(Exception):  # closing must not hide why we stop
                self.device.close()
            self.device = None


_STOP = object()


class Gateway:
    def __init__(self, cfg: GatewayConfig, key: GatewayKey, *, clock: Clock | None = None,
                 opener: DeviceOpener = default_opener) -> None:
        self.cfg = cfg
        self.key = key
        self.address = key.address
        self.clock: Clock = clock or SystemClock()
        self.opener = opener
        self.outbox = Outbox(cfg.outbox, key.address, cfg.outbox_max_readings)
        self.publisher = Publisher(cfg.mqtt, cfg.community, key.address)
        self.ratelimit = RateLimited(log)
        self.pollers = [DevicePoller(d, self) for d in cfg.devices]
        self.roles = {d.name: d.spec.role for d in cfg.devices}
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.inflight: dict[int, tuple[str, int]] = {}
        self.handed_upto = 0
        self.claims_handed: set[int] = set()
        max_interval = max((d.interval_s for d in cfg.devices), default=60.0)
        grace_ms = int((2 * max_interval + 5) * 1000 * self.clock.speed)
        self.claims = ClaimMaker(cfg.claims, key, cfg.community, grace_ms)
        self.claims_due = threading.Event()
        self.started_ms = self.clock.now_ms()
        self.started_monotonic = time.monotonic()
        self.published = 0
        self.acked = 0
        self.commits = 0
        self.write_errors = 0
        self.last_write_error: str | None = None
        self.submitted = 0
        self.processed = 0
        self._ack_retry: list[int] = []
        self._shapes: dict[tuple[str, tuple[str, ...], tuple[str, ...], str | None],
                           tuple[bytes, tuple[str, ...], bool]] = {}
        self._stopping = threading.Event()
        self._writer: threading.Thread | None = None
        self._wake = threading.Event()
        self.scheduler: Any = None
        self.proxies: list[Any] = []
        self.metrics_server: Any = None

    # --- the writer thread --------------------------------------------------------------

    def submit(self, item: _Item) -> None:
        self.submitted += 1
        self.queue.put(item)

    def _writer_loop(self) -> None:
        q = self.queue
        stop = False
        busy = False
        while True:
            items: list[Any] = []
            try:
                items.append(q.get(timeout=0.05 if self.inflight else 0.5))
                if busy:
                    # Readings are coming in a stream: let a few more arrive so that one
                    # fsync'd transaction covers them all (group commit).
                    time.sleep(GROUP_COMMIT_LINGER_S)
            except queue.Empty:
                pass
            while True:
                try:
                    items.append(q.get_nowait())
                except queue.Empty:
                    break
            if _STOP in items:
                stop = True
                items = [i for i in items if i is not _STOP]
            busy = len(items) > 0
            try:
                self._cycle(items)
            except Exception as exc:  # keep the writer alive whatever happens; say why
                log.exception("event=writer_error error=%s", quote(exc))
                time.sleep(0.5)
            if stop and (not self.inflight or self._flush_deadline < time.monotonic()):
                self._cycle([])
                return

    _flush_deadline = 0.0

    def _cycle(self, items: list[_Item]) -> None:
        outbox, inflight = self.outbox, self.inflight
        acked: list[int] = self._ack_retry
        self._ack_retry = []
        acked_claims: list[int] = []
        for mid in self.publisher.take_acks():
            k = inflight.pop(mid, None)
            if k is None:
                continue  # the status message
            if k[0] == "r":
                acked.append(k[1])
            else:
                acked_claims.append(k[1])
        rows: list[Row] = []
        head = outbox.head
        seq, prev = head.seq, head.hash
        key = self.key.private
        encode, envelope = self._encode, rd.encode_envelope
        for it in items:
            try:
                body, has_energy = encode(it, seq + 1, prev)
            except rd.ReadingError as exc:
                # A driver produced a value the format refuses: drop this one poll.
                self.ratelimit.log(logging.ERROR, it.dev, "format", str(exc))
                continue
            seq += 1
            # EIP-191 personal_sign, as quartier.signing.sign_personal does.
            sig = sign_hash(key, keccak256(b"\x19Ethereum Signed Message:\n%d%b" % (len(body), body)))
            prev = keccak256(body).hex()
            rows.append(Row(seq, it.ts, it.dev, envelope(body, sig), body if has_energy else None))
        if rows:
            head = rd.ChainHead(seq, prev)
        if rows or acked:
            try:
                outbox.commit(rows, head, acked)
                self.commits += 1
            except OutboxError as exc:
                # Nothing of this batch is durable, so none of it is published and the
                # chain head stays where it was: the next batch reuses these seqs.
                self.write_errors += 1
                self.last_write_error = str(exc)
                self.ratelimit.log(logging.ERROR, "outbox", "write", str(exc))
                rows = []
                self._ack_retry.extend(acked)  # try the deletes again with the next batch
                acked = []
        self.acked += len(acked)
        if acked_claims:
            outbox.claim_acked(acked_claims)
            self.claims_handed.difference_update(acked_claims)
        if self.claims_due.is_set():
            self.claims_due.clear()
            try:
                self.claims.run(outbox, self.clock.now_ms())
            except Exception as exc:
                log.exception("event=claim_error error=%s", quote(exc))
        self.processed += len(items)
        self._publish(rows)

    def _encode(self, it: _Item, seq: int, prev: str) -> tuple[bytes, bool]:
        """(`rd.encode` of the reading, whether it carries energy registers), with the work
        that cannot change between polls done once per shape.

        A device gives the same measurement names, flags and meter id poll after poll;
        once `rd.encode` has accepted a shape and a body filled in from the shape's
        template has come out byte for byte the same, only the values (integers in range)
        need checking and the template is filled in directly.
        """
        shape = (it.dev, tuple(it.values), it.flags, it.meter)
        known = self._shapes.get(shape)
        if known is not None:
            template, names, has_energy = known
            m = it.values
            values = [m[k] for k in names]
            for v in values:
                if type(v) is not int or not rd.INT_MIN <= v <= rd.INT_MAX:
                    break  # rd.encode below gives the precise error
            else:
                return template % (*values, prev.encode(), seq, it.ts), has_energy
        r = rd.Reading(gw=self.address, dev=it.dev, seq=seq, ts=it.ts, prev=prev,
                       m=it.values, flags=it.flags, meter=it.meter)
        body = rd.encode(r)
        has_energy = any(k in it.values for k in ENERGY_KEYS)
        if known is None and len(self._shapes) < 1024:
            template, names = _body_template(r)
            filled = template % (*(r.m[k] for k in names), prev.encode(), seq, it.ts)
            if filled == body:  # never trust the template more than rd.encode
                self._shapes[shape] = (template, names, has_energy)
        return body, has_energy

    def _publish(self, rows: list[Row]) -> None:
        pub, inflight = self.publisher, self.inflight
        room = self.cfg.mqtt.max_inflight - len(inflight)
        if room <= 0:
            return
        head_seq = self.outbox.head.seq
        batch: list[tuple[int, bytes]]
        if rows and rows[0].seq == self.handed_upto + 1 and len(rows) <= room:
            batch = [(r.seq, r.payload) for r in rows]
        elif self.handed_upto < head_seq:
            batch = self.outbox.pending(self.handed_upto, room)
            if len(batch) < room:
                self.handed_upto = head_seq
        else:
            batch = []
        if batch:
            mids = pub.publish_many(pub.reading_topic, [payload for _, payload in batch])
            for mid, (seq, _) in zip(mids, batch, strict=True):
                inflight[mid] = ("r", seq)
            self.handed_upto = batch[-1][0]
            self.published += len(batch)
        if self.outbox_claims_pending():
            for start, payload in self.outbox.unsent_claims():
                if start not in self.claims_handed and payload:
                    inflight[pub.publish(pub.claim_topic, payload)] = ("c", start)
                    self.claims_handed.add(start)

    _claims_check_ms = 0

    def outbox_claims_pending(self) -> bool:
        # Cheap gate: claims are rare, look for unsent ones at most every few seconds.
        now = int(time.monotonic() * 1000)
        if now - self._claims_check_ms < 5000:
            return False
        self._claims_check_ms = now
        return True

    # --- lifecycle --------------------------------------------------------------------------

    def start_io(self) -> None:
        """Start the publisher and the writer (no polling yet)."""
        self.publisher.set_wake(self._wake)
        self.publisher.start()
        self._writer = threading.Thread(target=self._writer_loop, name="outbox-writer",
                                        daemon=True)
        self._writer.start()
        for pc in self.cfg.proxies:
            from gateway.proxy import ModbusProxy

            poller = next(p for p in self.pollers if p.cfg.name == pc.device)
            proxy = ModbusProxy(pc, poller._open)
            proxy.start()
            self.proxies.append(proxy)
        if self.cfg.metrics is not None:
            from gateway.status import start_metrics_server

            self.metrics_server = start_metrics_server(self, *self.cfg.metrics)

    def start_polling(self) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        from gateway.status import write_status_file

        workers = len(self.pollers) + 2
        sched = BackgroundScheduler(executors={"default": ThreadPoolExecutor(workers)},
                                    job_defaults={"coalesce": True, "max_instances": 1,
                                                  "misfire_grace_time": None})
        for p in self.pollers:
            sched.add_job(p.poll, "interval", seconds=p.cfg.interval_s, jitter=p.cfg.jitter_s,
                          id=f"poll-{p.cfg.name}", next_run_time=_now())
        sched.add_job(write_status_file, "interval", args=[self],
                      seconds=self.cfg.status_interval_s, id="status", next_run_time=_now())
        # Look for due periods often enough to claim within a few percent of a period
        # (every 30 s for daily or hourly claims; faster under a simulated clock).
        period_s = 86400 if self.cfg.claims.period == "daily" else 3600
        check_s = max(1.0, min(30.0, period_s / self.clock.speed / 100))
        sched.add_job(self.claims_due.set, "interval", seconds=check_s, id="claims",
                      next_run_time=_now())
        sched.start()
        self.scheduler = sched

    def stop(self, flush_s: float = 3.0) -> None:
        """Stop polling, store what is queued, wait a little for PUBACKs, disconnect."""
        self._stopping.set()
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)
        for proxy in self.proxies:
            proxy.stop()
        if self._writer is not None:
            self._flush_deadline = time.monotonic() + flush_s
            self.queue.put(_STOP)
            self._writer.join(flush_s + 5)
        self.publisher.stop()
        try:
            from gateway.status import write_status_file

            write_status_file(self, running=False)
        except OSError:
            pass
        for p in self.pollers:
            p.close()
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
        self.outbox.close()

    def run_forever(self) -> None:
        stop = threading.Event()

        def handle(signum: int, frame: Any) -> None:
            log.info("event=stopping signal=%s", signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
        self.start_io()
        log.info("event=started gateway=%s community=%s devices=%d outbox_depth=%d last_seq=%d",
                 self.address, self.cfg.community, len(self.pollers), self.outbox.depth,
                 self.outbox.head.seq)
        self.start_polling()
        while not stop.wait(1.0):
            pass
        self.stop()
        log.info("event=stopped last_seq=%d outbox_depth=%d",
                 self.outbox.head.seq, self.outbox.depth)

    def run_once(self, timeout_s: float = 30.0) -> list[str]:
        """One poll of every device, then flush the outbox. Returns the problems, if any."""
        problems: list[str] = []
        self.start_io()
        for p in self.pollers:
            if not p.poll():
                problems.append(f"device {p.cfg.name}: {p.state.last_error}")
        self.claims_due.set()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.processed >= self.submitted and self.outbox.depth == 0:
                break
            time.sleep(0.05)
        else:
            err = self.publisher.last_error or "no PUBACK in time"
            problems.append(f"outbox not flushed in {timeout_s:.0f} s: {self.outbox.depth} "
                            f"reading(s) left ({err}); they will be sent by the next run")
        self.stop(flush_s=0.5)
        return problems


def _body_template(r: rd.Reading) -> tuple[bytes, tuple[str, ...]]:
    """The canonical body of readings shaped like `r` (same dev, gw, measurement names,
    flags, meter) as a %-template: the measurement values in name order, then prev,
    seq and ts. Keys in sorted order, as `rd.canonical_bytes` writes them."""
    names = tuple(sorted(r.m))

    def text(value: object) -> str:
        return json.dumps(value, separators=(",", ":")).replace("%", "%%")

    parts = ['{"dev":' + text(r.dev)]
    if r.flags:
        parts.append('"flags":' + text(list(r.flags)))
    parts.append('"gw":' + text(r.gw))
    parts.append('"m":{' + ",".join(f'"{k}":%d' for k in names) + "}")
    if r.meter is not None:
        parts.append('"meter":' + text(r.meter))
    parts.append(f'"prev":"%s","seq":%d,"ts":%d,"v":{r.v:d}}}')
    return ",".join(parts).encode("ascii"), names


def _now() -> Any:
    from datetime import datetime

    return datetime.now().astimezone()
