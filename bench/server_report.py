"""The server benchmark's table: rows, ratios, aims, rich and Markdown output."""

from __future__ import annotations

import os
import platform
import sqlite3
from dataclasses import dataclass
from typing import Any

import psutil

from bench._common import package_version as version_of
from bench.server_http import LABELS, SERVERS
from bench.server_workloads import Config

# ---------------------------------------------------------------------------------------------
# The report


def fmt_mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} MB"


def fmt_num(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def fmt_s(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1e3:.0f} ms" if value < 1 else f"{value:.2f} s"


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f} ms" if value < 10 else f"{value:,.0f} ms"


def dig(data: dict[str, Any], path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


@dataclass
class Metric:
    """One row of the table."""

    label: str
    path: str
    unit: str  # "rate", "s", "ms", "mb", "count"
    higher_is_better: bool
    scored: bool = True
    aim_vs_mlflow: float | None = None
    aim_below: float | None = None
    note: str = ""

    def value(self, result: dict[str, Any] | None) -> float | None:
        if result is None:
            return None
        found = dig(result, self.path)
        return None if found is None else float(found)

    def fmt(self, value: float | None) -> str:
        if self.unit == "rate":
            return fmt_num(value)
        if self.unit == "s":
            return fmt_s(value)
        if self.unit == "ms":
            return fmt_ms(value)
        if self.unit == "mb":
            return fmt_mb(value)
        return "-" if value is None else f"{value:,.0f}"

    def ratio(self, ours: float | None, theirs: float | None) -> float | None:
        """How many times better Slipway is (>1: better, <1: worse)."""
        if ours is None or theirs is None:
            return None
        if self.higher_is_better:
            return ours / theirs if theirs > 0 else None
        if ours <= 0:
            return None
        return theirs / ours


def metrics_for(cfg: Config) -> list[Metric]:
    return [
        Metric("start: spawn -> /health 200", "start_s", "s", False, aim_below=2.0),
        Metric("  then the first API call", "first_call_ms", "ms", False, scored=False),
        Metric(
            "idle memory, PSS of the process tree",
            "idle_memory.pss_mb",
            "mb",
            False,
            aim_below=150.0,
        ),
        Metric("  RSS sum / processes", "idle_memory.rss_mb", "mb", False, scored=False),
        Metric(
            f"log-metric x {cfg.calls:,}, kept-alive: calls/s",
            "seq_keepalive.calls_per_s",
            "rate",
            True,
            aim_vs_mlflow=20,
        ),
        Metric("  p50", "seq_keepalive.p50_ms", "ms", False, scored=False),
        Metric("  p99", "seq_keepalive.p99_ms", "ms", False, scored=False),
        Metric(
            "  server CPU per call",
            "seq_keepalive.server_cpu_ms_per_call",
            "ms",
            False,
            scored=False,
        ),
        Metric(
            "log-metric, new connection per call: calls/s",
            "seq_close.calls_per_s",
            "rate",
            True,
            aim_vs_mlflow=20,
        ),
        Metric("  p50", "seq_close.p50_ms", "ms", False, scored=False),
        Metric("  p99", "seq_close.p99_ms", "ms", False, scored=False),
        Metric(
            f"log-batch {cfg.batch_calls} x {cfg.batch_size:,}: metrics/s",
            "log_batch.metrics_per_s",
            "rate",
            True,
            aim_vs_mlflow=20,
        ),
        Metric("  per-call p50", "log_batch.p50_ms", "ms", False, scored=False),
        Metric("  per-call p99", "log_batch.p99_ms", "ms", False, scored=False),
        Metric(
            "  server CPU per call",
            "log_batch.server_cpu_ms_per_call",
            "ms",
            False,
            scored=False,
        ),
        Metric(
            f"{cfg.writers} writers x {cfg.writer_calls:,} log-metric: calls/s",
            "concurrent.calls_per_s",
            "rate",
            True,
        ),
        Metric("  p99", "concurrent.p99_ms", "ms", False, scored=False),
        Metric("  errors", "concurrent.errors", "count", False, scored=False),
        Metric(
            f"search {cfg.runs:,} runs, no filter, all pages",
            "search_all.median_s",
            "s",
            False,
            aim_vs_mlflow=20,
        ),
        Metric(
            "  server CPU per search",
            "search_all.server_cpu_ms_per_read",
            "ms",
            False,
            scored=False,
        ),
        Metric("search, filter + order_by", "search_filter.median_s", "s", False, aim_vs_mlflow=20),
        Metric(
            f"get-history {cfg.history:,} points", "history.median_s", "s", False, aim_vs_mlflow=20
        ),
        Metric(
            "  server CPU per read", "history.server_cpu_ms_per_read", "ms", False, scored=False
        ),
        Metric("  client JSON parse", "history.client_parse_median_s", "s", False, scored=False),
        Metric(
            f"registry x {cfg.registry_cycles}: version + alias + get, cycles/s",
            "registry.cycles_per_s",
            "rate",
            True,
        ),
        Metric("  p50", "registry.p50_ms", "ms", False, scored=False),
        Metric(
            "  server CPU per cycle", "registry.server_cpu_ms_per_cycle", "ms", False, scored=False
        ),
        Metric(
            f"(setup) populate {cfg.runs:,} runs, 4 threads",
            "search_populate.wall_s",
            "s",
            False,
            scored=False,
        ),
        Metric(
            f"(setup) write {cfg.history:,} points (log-batch)",
            "history_populate.wall_s",
            "s",
            False,
            scored=False,
        ),
        Metric("memory after the workloads, PSS", "end_memory.pss_mb", "mb", False, scored=False),
    ]


def fmt_ratio(ratio: float | None) -> str:
    if ratio is None:
        return "-"
    if ratio >= 10:
        return f"{ratio:,.0f}x"
    return f"{ratio:.1f}x" if ratio >= 1 else f"{ratio:.2f}x"


def aim_text(
    metric: Metric, ours: float | None, vs_mlflow: float | None, vs_fml: float | None
) -> str:
    parts: list[str] = []
    if metric.aim_vs_mlflow is not None and vs_mlflow is not None:
        ok = vs_mlflow >= metric.aim_vs_mlflow
        parts.append(f">={metric.aim_vs_mlflow:.0f}x MLflow {'met' if ok else 'MISSED'}")
    if metric.aim_below is not None and ours is not None:
        ok = ours < metric.aim_below
        limit = f"{metric.aim_below:.0f} s" if metric.unit == "s" else f"{metric.aim_below:.0f} MB"
        parts.append(f"<{limit} {'met' if ok else 'MISSED'}")
    if metric.scored and vs_fml is not None:
        parts.append("ahead of FML" if vs_fml > 1 else "BEHIND FML")
    return ", ".join(parts)


def table_rows(results: dict[str, Any], cfg: Config) -> tuple[list[str], list[list[str]]]:
    present = [s for s in SERVERS if s in results]
    ours = results.get("slipway")
    header = [
        "workload",
        *[LABELS[s] for s in present],
        "Slipway vs MLflow",
        "Slipway vs FML",
        "aim",
    ]
    rows: list[list[str]] = []
    for metric in metrics_for(cfg):
        cells = []
        for s in present:
            text = metric.fmt(metric.value(results[s]))
            if metric.path == "idle_memory.rss_mb":
                procs = dig(results[s], "idle_memory.processes")
                text += f" / {procs}" if procs is not None else ""
            cells.append(text)
        mine = metric.value(ours)
        vs_mlflow = metric.ratio(mine, metric.value(results.get("mlflow")))
        vs_fml = metric.ratio(mine, metric.value(results.get("fml")))
        show = metric.scored or metric.unit in ("ms", "mb")
        rows.append(
            [
                metric.label,
                *cells,
                fmt_ratio(vs_mlflow) if show else "",
                fmt_ratio(vs_fml) if show else "",
                aim_text(metric, mine, vs_mlflow, vs_fml),
            ]
        )
    return header, rows


def render_table(header: list[str], rows: list[list[str]]) -> Any:
    from rich.table import Table

    table = Table(
        title="Tracking server over HTTP (x = times better for Slipway: faster, lower or smaller)",
        title_justify="left",
    )
    for i, name in enumerate(header):
        table.add_column(
            name,
            justify="left" if i in (0, len(header) - 1) else "right",
            no_wrap=i != len(header) - 1,
        )
    for row in rows:
        style = "dim" if row[0].startswith(("  ", "(setup)")) else None
        aim = row[-1].replace("MISSED", "[red]MISSED[/]").replace("BEHIND", "[red]BEHIND[/]")
        table.add_row(*row[:-1], aim, style=style)
    return table


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["--:"] * (len(header) - 2) + ["---"]) + "|",
    ]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "sqlite": sqlite3.sqlite_version,
        "client": f"urllib3 {version_of('urllib3')}",
        "slipway": version_of("slipway"),
        "mlflow": version_of("mlflow"),
        "uvicorn": version_of("uvicorn"),
        "starlette": version_of("starlette"),
        "sqlalchemy": version_of("sqlalchemy"),
    }
