"""How long the runs pages take on the server at 10,000 runs and 1,000 metric keys.

Usage::

    python -m bench.ui_runs [--runs 10000] [--keys 1000] [--history 100000] [--repeat 5]
                            [--db sqlite|postgresql://...] [--keep]

Populates one experiment through the store (a one-off cost, timed but not scored): ``--runs``
runs, each with 10 params and 3 tags; the newest 100 (the first page of the table) log every
one of ``--keys`` metric keys, the others 20 each, so all keys exist and the first page carries
the most. One run also logs a ``loss`` history of ``--history`` points.

Then it requests each page in-process through the server app (``httpx.ASGITransport``, so no
network or browser time is counted) ``--repeat`` times after one warm-up, and prints the median
and the slowest, with the page size. Nothing here is a pass/fail check: the numbers go in the
report.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import time
from pathlib import Path
from typing import Any

from bench._common import interrupt, temporary_root

PAGE = 100
PARAMS = 10
OTHER_KEYS = 20


def populate(store: Any, runs: int, keys: int, history: int) -> tuple[str, list[str]]:
    """The experiment and its run ids, oldest first."""
    from slipway.entities import Metric, Param, RunTag

    exp = store.create_experiment("bench")
    names = [f"m{k:04d}" for k in range(keys)]
    ids: list[str] = []
    t0 = 1_800_000_000_000
    started = time.perf_counter()
    for i in range(runs):
        start = t0 + i * 1000
        run = store.create_run(exp, None, start, [], f"run-{i:05d}")
        run_id = run.info.run_id
        ids.append(run_id)
        newest = i >= runs - PAGE
        picked = (
            names if newest else [names[(i * OTHER_KEYS + j) % keys] for j in range(OTHER_KEYS)]
        )
        metrics = [
            Metric(k, ((i * 7919 + n) % 1000) / 1000, start, 0) for n, k in enumerate(picked)
        ]
        params = [Param(f"p{j}", str((i + j) % 17)) for j in range(PARAMS)]
        tags = [RunTag("team", ("red", "blue", "green")[i % 3]), RunTag("i", str(i))]
        for first in range(0, len(metrics), 1000):
            store.log_batch(
                run_id,
                metrics=metrics[first : first + 1000],
                params=params if first == 0 else [],
                tags=tags if first == 0 else [],
            )
        from slipway.entities import RunStatus

        store.update_run_info(run_id, RunStatus.FINISHED, start + (i % 90) * 1000)
        if (i + 1) % 1000 == 0:
            print(f"  {i + 1} runs ({time.perf_counter() - started:.0f}s)", flush=True)
    big = ids[-1]
    for first in range(0, history, 1000):
        store.log_batch(
            big,
            metrics=[
                Metric("loss", 1 / (s + 1), t0 + s * 100, s)
                for s in range(first, min(first + 1000, history))
            ],
        )
    print(f"populated in {time.perf_counter() - started:.0f}s", flush=True)
    return exp, ids


async def measure(app: Any, paths: list[tuple[str, str]], repeat: int) -> list[dict[str, Any]]:
    import httpx

    transport = httpx.ASGITransport(app=app)
    results = []
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        for label, path in paths:
            first = await client.get(path)
            if first.status_code != 200:
                raise SystemExit(f"{label}: {path} answered {first.status_code}")
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                response = await client.get(path)
                times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200
            results.append({
                "page": label,
                "median_ms": statistics.median(times),
                "max_ms": max(times),
                "kb": len(response.content) / 1024,
            })  # fmt: skip
            print(f"{label:<46} {results[-1]['median_ms']:8.1f} ms  (max {max(times):7.1f})  "
                  f"{results[-1]['kb']:8.1f} KB", flush=True)  # fmt: skip
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--history", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--db", default="sqlite", help="sqlite, or a postgresql:// URI")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, interrupt)

    from slipway.server import ServerSettings, create_app

    with temporary_root("slipway-bench-ui-", args.keep) as root:
        db = f"sqlite:///{root / 'store.db'}" if args.db == "sqlite" else args.db
        settings = ServerSettings(backend_store_uri=db, artifacts_destination=str(root / "art"))
        app = create_app(settings)
        store = app.state.context.store
        exp, ids = populate(store, args.runs, args.keys, args.history)
        newest, older = ids[-1], ids[-2]
        token = _offset_token(args.runs // 2)
        paths = [
            ("runs table, defaults", f"/experiments/{exp}/runs"),
            ("runs table, 6 chosen columns", f"/experiments/{exp}/runs?cols=params.p1"
             "&cols=params.p2&cols=metrics.m0001&cols=metrics.m0500&cols=metrics.m0999"
             "&cols=tags.team"),
            ("runs table, filter on a metric", f"/experiments/{exp}/runs?filter=metrics.m0007"
             "+%3C+0.5+and+tags.team+%3D+%27red%27"),
            ("runs table, order by a metric", f"/experiments/{exp}/runs?order_by=metrics.m0042"
             "+DESC&cols=metrics.m0042"),
            ("runs table, order by a param", f"/experiments/{exp}/runs?order_by=params.p3+ASC"),
            (f"runs table, page at run {args.runs // 2}",
             f"/experiments/{exp}/runs?page_token={token}"),
            ("run page (1,000 metrics, chart by step)", f"/runs/{newest}"),
            ("run page, chart by time", f"/runs/{newest}?x=time"),
            ("chart.svg by step", f"/runs/{newest}/chart.svg?metric=loss"),
            ("chart.svg by time, smoothed",
             f"/runs/{newest}/chart.svg?metric=loss&x=time&smooth=0.9"),
            ("compare 2 runs", f"/compare?runs={newest}&runs={older}&metric=loss"),
            ("compare 10 runs", "/compare?" + "&".join(f"runs={i}" for i in ids[-10:])
             + "&metric=m0001"),
        ]  # fmt: skip
        print(f"\n{args.runs} runs, {args.keys} metric keys, {args.history} history points, "
              f"{args.db}; median of {args.repeat}\n")  # fmt: skip
        asyncio.run(measure(app, paths, args.repeat))
        app.state.context.close()
        if args.keep:
            print(f"kept {Path(root)}")


def _offset_token(offset: int) -> str:
    from slipway.tracking.search import encode_page_token

    return encode_page_token(offset)


if __name__ == "__main__":
    main()
