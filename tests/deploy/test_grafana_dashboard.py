"""deploy/grafana/wan-gateway.json: a dashboard Grafana can import (the shape it reads, a Prometheus
datasource variable every panel and query uses), whose every query names only series the gateway's
`/metrics` exports (the families built by app/ops/metrics.py and app/telemetry/metrics.py, with the
suffixes their types add), and which shows every family of its own at least once."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client.metrics_core import Metric

from app.ops.metrics import _Snapshot
from app.ops.stats import QueueStats
from app.ops.usage import Spend
from app.telemetry import metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "wan-gateway.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
NAME = re.compile(r"\bwan_gateway_[a-z_]+\b")


def exported() -> tuple[set[str], set[str]]:
    """(every series name /metrics can show, the families of this process's own registry)."""
    snapshot = _Snapshot(
        QueueStats({"queued": 1}, {"flash": 1}, 1, 1.0, 0, {"pending": 1}, 1.0),
        {"job_poller": 1.0},
        [Spend("t", "m", "CNY", 1.0, 1.0)],
        {"a": True},
    )
    families: list[Metric] = [*snapshot.collect(), *metrics.REGISTRY.collect()]
    series = {family.name + suffix for family in families for suffix in SUFFIXES[family.type]}
    return series, {family.name for family in metrics.REGISTRY.collect()}


def test_the_dashboard_is_grafana_json_querying_only_exported_series() -> None:
    board: dict[str, Any] = json.loads(DASHBOARD.read_text())
    assert board["uid"] == "wan-gateway" and board["title"] and isinstance(board["schemaVersion"], int)
    [source] = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
    assert source["query"] == "prometheus"
    variable = "${" + source["name"] + "}"
    series, own = exported()

    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"]), "panel ids are unique"
    named: set[str] = set()
    for panel in panels:
        assert panel["title"] and panel["targets"], panel
        assert panel["datasource"] == {"type": "prometheus", "uid": variable}, panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == variable and target["refId"], panel["title"]
            names = set(NAME.findall(target["expr"]))
            assert names, f"{panel['title']}: {target['expr']} names no gateway metric"
            assert names <= series, f"{panel['title']}: not exported: {sorted(names - series)}"
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
            named |= names
    for variable_query in board["templating"]["list"]:
        if variable_query["type"] == "query":
            assert set(NAME.findall(variable_query["definition"])) <= series

    shown = {family for family in own if any(name.startswith(family) for name in named)}
    assert shown == own, f"families of /metrics no panel shows: {sorted(own - shown)}"
