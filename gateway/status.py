"""What the gateway says about itself: `gateway status` JSON and Prometheus metrics.

The running gateway writes a snapshot beside its outbox every few seconds (atomically:
write, fsync, rename). `quartier gateway status` reads the outbox itself (read-only) for
its depth, oldest unsent reading and last seq — true even when the gateway is stopped —
and the snapshot for devices, lines and the broker connection.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from gateway.config import GatewayConfig
from gateway.outbox import connect, read_stats

if TYPE_CHECKING:
    from gateway.runtime import Gateway


def _lines(gw: Gateway) -> dict[str, Any]:
    """Shared Modbus lines: utilisation since start and the devices on each."""
    out: dict[str, Any] = {}
    elapsed = max(time.monotonic() - gw.started_monotonic, 1e-3)
    for p in gw.pollers:
        line = getattr(p.device, "line", None)
        if line is None:
            continue
        entry = out.setdefault(str(line.endpoint), {
            "requests": line.stats.requests,
            "utilisation": round(min(line.stats.busy_s / elapsed, 1.0), 4),
            "errors": dict(line.stats.errors),
            "reconnects": line.stats.reconnects,
            "devices": [],
            "behind": [],
        })
        entry["devices"].append(p.cfg.name)
        if p.state.late:
            entry["behind"].append(p.cfg.name)
    return out


def _device(poller: Any) -> dict[str, Any]:
    """A device's state, with the driver's own exact counters: a meter sending frames
    faster than it is polled has errors between polls that no poll sees."""
    out: dict[str, Any] = poller.state.as_dict()
    counters = getattr(poller.device, "counters", None)
    if callable(counters):
        out["counters"] = counters()
    return out


def snapshot(gw: Gateway, running: bool = True) -> dict[str, Any]:
    pub = gw.publisher
    head = gw.outbox.head
    return {
        "gateway": gw.address,
        "community": gw.cfg.community,
        "running": running,
        "pid": os.getpid(),
        "written_ms": int(time.time() * 1000),
        "started_ms": gw.started_ms,
        "last_seq": head.seq,
        "outbox_depth": gw.outbox.depth,
        "published": gw.published,
        "acknowledged": gw.acked,
        "inflight": len(gw.inflight),
        "write_errors": gw.write_errors,
        "last_write_error": gw.last_write_error,
        "broker": {
            "url": f"{'mqtts' if gw.cfg.mqtt.tls else 'mqtt'}://{gw.cfg.mqtt.host}:{gw.cfg.mqtt.port}",
            "client_id": pub.client_id,
            "connected": pub.connected.is_set() and running,
            "connects": pub.connects,
            "disconnects": pub.disconnects,
            "last_error": pub.last_error,
            "since_ms": int(pub.last_change * 1000),
        },
        "devices": {p.cfg.name: _device(p) for p in gw.pollers},
        "lines": _lines(gw),
        "proxies": [pr.stats() for pr in gw.proxies],
    }


def write_status_file(gw: Gateway, running: bool = True) -> None:
    path = gw.cfg.status_file
    tmp = path.with_name(path.name + ".tmp")
    data = json.dumps(snapshot(gw, running), sort_keys=True).encode()
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_status(cfg: GatewayConfig) -> dict[str, Any]:
    """The status JSON of `quartier gateway status`."""
    out: dict[str, Any] = {"config": str(cfg.path), "community": cfg.community}
    snap: dict[str, Any] | None = None
    try:
        snap = json.loads(cfg.status_file.read_text())
    except (OSError, ValueError):
        snap = None
    running = bool(snap and snap.get("running") and _pid_alive(int(snap.get("pid", 0))))
    out["running"] = running
    if cfg.outbox.exists():
        try:
            db = connect(cfg.outbox, readonly=True)
            try:
                st = read_stats(db)
            finally:
                db.close()
        except sqlite3.Error as exc:
            out["outbox_error"] = str(exc)
            st = None
    else:
        st = None
    now = int(time.time() * 1000)
    out["outbox_depth"] = st.depth if st else 0
    out["oldest_unsent"] = (
        {"seq": st.oldest_seq, "ts": st.oldest_ts,
         "age_s": round((now - st.oldest_ts) / 1000, 1) if st.oldest_ts is not None else None}
        if st and st.oldest_seq is not None else None)
    out["last_seq"] = st.last_seq if st else 0
    out["claims_pending"] = st.claims_pending if st else 0
    out["thinned"] = st.thinned if st else 0
    if snap:
        out["gateway"] = snap.get("gateway")
        out["status_age_s"] = round((now - int(snap.get("written_ms", now))) / 1000, 1)
        broker = dict(snap.get("broker", {}))
        if not running:
            broker["connected"] = False
        out["broker"] = broker
        out["devices"] = snap.get("devices", {})
        out["lines"] = snap.get("lines", {})
        out["proxies"] = snap.get("proxies", [])
    else:
        out["broker"] = {"connected": False}
        out["devices"] = {d.name: {"state": "unknown", "last_success_ms": None,
                                   "last_error": None} for d in cfg.devices}
    return out


# --- Prometheus text exposition (format 0.0.4), without a dependency ----------------------


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(snap: dict[str, Any]) -> str:
    lines: list[str] = []

    def metric(name: str, kind: str, help_: str,
               samples: list[tuple[dict[str, str], float]]) -> None:
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lab = ",".join(f'{k}="{_esc(v)}"' for k, v in labels.items())
            lines.append(f"{name}{{{lab}}} {value}" if lab else f"{name} {value}")

    metric("quartier_gateway_last_seq", "gauge", "Seq of the last signed reading.",
           [({}, snap["last_seq"])])
    metric("quartier_gateway_outbox_depth", "gauge", "Readings not acknowledged by the broker.",
           [({}, snap["outbox_depth"])])
    metric("quartier_gateway_published_total", "counter", "Messages handed to the broker.",
           [({}, snap["published"])])
    metric("quartier_gateway_acknowledged_total", "counter", "Readings acknowledged (PUBACK).",
           [({}, snap["acknowledged"])])
    metric("quartier_gateway_broker_connected", "gauge", "1 when connected to the broker.",
           [({}, 1 if snap["broker"]["connected"] else 0)])
    metric("quartier_gateway_broker_connects_total", "counter", "Successful broker connections.",
           [({}, snap["broker"]["connects"])])
    devs = snap["devices"]
    metric("quartier_device_polls_total", "counter", "Polls per device.",
           [({"device": n}, d["polls"]) for n, d in devs.items()])
    metric("quartier_device_readings_total", "counter", "Readings per device.",
           [({"device": n}, d["readings"]) for n, d in devs.items()])
    metric("quartier_device_errors_total", "counter", "Device errors by class.",
           [({"device": n, "kind": k}, v) for n, d in devs.items() for k, v in d["errors"].items()])
    metric("quartier_device_frames_total", "counter",
           "Frames or answers seen by the driver, by outcome (ok, checksum, timeout, ...).",
           [({"device": n, "outcome": k}, v) for n, d in devs.items()
            for k, v in d.get("counters", {}).items()])
    metric("quartier_device_flags_total", "counter", "Flagged readings by flag.",
           [({"device": n, "flag": k}, v) for n, d in devs.items() for k, v in d["flags"].items()])
    metric("quartier_device_up", "gauge", "1 ok, 0.5 asleep, 0 failing.",
           [({"device": n}, {"ok": 1, "asleep": 0.5}.get(d["state"], 0)) for n, d in devs.items()])
    metric("quartier_device_last_success_seconds", "gauge", "Time of the last good poll.",
           [({"device": n}, (d["last_success_ms"] or 0) / 1000) for n, d in devs.items()])
    metric("quartier_line_utilisation", "gauge", "Share of time a Modbus line is busy.",
           [({"line": n}, v["utilisation"]) for n, v in snap["lines"].items()])
    return "\n".join(lines) + "\n"


def start_metrics_server(gw: Gateway, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body = render_metrics(snapshot(gw)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
