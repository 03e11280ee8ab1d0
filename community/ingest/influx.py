"""Export of readings and interval energy to InfluxDB (v2 write API), for Grafana.

Measurements (deploy/grafana/quartier-ingest.json reads them):
- `reading`, tags `gateway`, `device`, `meter_point`, `role`; one integer field per
  measurement of the signed reading (`p_w`, `e_imp_wh`, ...); time = the reading's `ts`.
- `interval`, tags `meter_point`, `role`, `quality`; fields `imported_wh`, `exported_wh`,
  `produced_wh`; time = interval start. Intervals touched by a batch are written again
  after it: a point with the same series and time replaces the previous one, so late and
  gap-filling readings correct the figures.

The export runs after the commit and never holds ingest back: a failure is logged, the
readings are in SQL, and `export_range` can replay any period.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from community.db import gateways
from community.ingest import store
from community.ingest.config import InfluxConfig
from quartier import reading as rd

log = logging.getLogger("quartier.ingest.influx")
REGISTRY_REFRESH_S = 30.0


class InfluxExporter:
    def __init__(self, config: InfluxConfig, engine: Engine, step_s: int, timeout_ms: int = 5000) -> None:
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.config = config
        self.engine = engine
        self.step_s = step_s
        self.client = InfluxDBClient(url=config.url, token=config.token or "none", org=config.org,
                                     timeout=timeout_ms)
        self.write_api = self.client.write_api(write_options=SYNCHRONOUS)
        self._where: dict[str, tuple[str, str]] = {}
        self._where_at = 0.0

    def _meter_points(self) -> dict[str, tuple[str, str]]:
        if time.monotonic() - self._where_at > REGISTRY_REFRESH_S:
            with self.engine.connect() as conn:
                self._where = {r.address: (r.meter_point, r.role) for r in
                               conn.execute(sa.select(gateways.c.address, gateways.c.meter_point, gateways.c.role))}
                conn.rollback()
            self._where_at = time.monotonic()
        return self._where

    def reading_points(self, readings: Iterable[rd.SignedReading]) -> list[Any]:
        from influxdb_client import Point, WritePrecision

        where = self._meter_points()
        points = []
        for s in readings:
            r = s.reading
            mp, role = where.get(r.gw, ("unknown", "unknown"))
            p = (Point("reading").tag("gateway", r.gw).tag("device", r.dev).tag("meter_point", mp)
                 .tag("role", role).time(r.ts, WritePrecision.MS))
            for name, value in r.m.items():
                p = p.field(name, int(value))
            points.append(p)
        return points

    def interval_points(self, meter_point: str, role: str, start_s: int, end_s: int) -> list[Any]:
        from influxdb_client import Point, WritePrecision

        with self.engine.connect() as conn:
            ivs = store.meter_point_intervals(conn, meter_point, start_s, end_s, self.step_s)
            conn.rollback()
        return [
            Point("interval").tag("meter_point", meter_point).tag("role", role).tag("quality", iv.quality)
            .field("imported_wh", iv.imported_wh).field("exported_wh", iv.exported_wh)
            .field("produced_wh", iv.produced_wh).time(iv.start, WritePrecision.S)
            for iv in ivs
        ]

    def on_commit(self, outcome: store.BatchOutcome) -> None:
        if not outcome.accepted:
            return
        points = self.reading_points(outcome.accepted)
        where = self._meter_points()
        spans: dict[tuple[str, str], tuple[int, int]] = {}
        for s in outcome.accepted:
            key = where.get(s.reading.gw)
            if key is None:
                continue
            t = s.reading.ts // 1000
            lo, hi = spans.get(key, (t, t))
            spans[key] = (min(lo, t), max(hi, t))
        for (mp, role), (lo, hi) in spans.items():
            # A reading moves the interpolation of its neighbouring intervals too.
            start = (lo // self.step_s - 1) * self.step_s
            end = (hi // self.step_s + 2) * self.step_s
            points += self.interval_points(mp, role, start, end)
        self.write(points)

    def export_range(self, start_s: int, end_s: int) -> int:
        """Write every meter point's intervals for [start_s, end_s) again; returns points written."""
        points = []
        seen = set()
        for mp, role in self._meter_points().values():
            if mp not in seen:
                seen.add(mp)
                points += self.interval_points(mp, role, start_s, end_s)
        self.write(points)
        return len(points)

    def write(self, points: list[Any]) -> None:
        if points:
            self.write_api.write(bucket=self.config.bucket, org=self.config.org, record=points)

    def close(self) -> None:
        self.client.close()
