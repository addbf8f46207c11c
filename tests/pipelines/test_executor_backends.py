"""The same pipeline against the other stores: PostgreSQL, and ``slipway server`` over HTTP
(step processes talk to the live server; artifacts go through its proxy, so the executor's
remote path — upload outputs, download inputs — is the one exercised)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from slipway.entities.pipelines import StepStatus
from slipway.pipelines import (
    Dataset,
    Input,
    Output,
    collected,
    component,
    parallel_for,
    pipeline,
    run,
)
from slipway.pipelines.store import clear_pipeline_store_cache, get_pipeline_store
from slipway.tracking import uri as uris
from slipway.tracking.client import SlipwayClient


@component
def write_rows(rows: int, data: Output[Dataset]) -> None:
    Path(data.path).write_text("\n".join(f"row {i}" for i in range(rows)))


@component
def count_rows(data: Input[Dataset], scale: int) -> int:
    return scale * len(Path(data.path).read_text().splitlines())


@component
def add_up(values: list) -> int:
    return sum(values)


@pipeline(name="rows")
def rows_pipeline(rows: int = 3) -> None:
    data = write_rows(rows=rows)
    with parallel_for([1, 2]) as scale:
        counted = count_rows(data=data.outputs["data"], scale=scale)
    add_up(values=collected(counted.output))


@pytest.fixture(params=["server", "postgresql"])
def tracking_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "server":
        rest = request.getfixturevalue("rest_store")
        uri = rest.server_url
    else:
        from conftest import _reset_postgres

        request.getfixturevalue("tracking_dir")  # artifacts under tmp_path
        uri = request.getfixturevalue("postgres_database")
        _reset_postgres(uri)
    yield uri
    clear_pipeline_store_cache()
    uris.clear_store_cache()


def test_pipeline_runs_and_caches_on_every_store(tracking_uri: str, tmp_path: Path) -> None:
    first = run(rows_pipeline, {"rows": 4}, tracking_uri=tracking_uri)
    assert first.succeeded, first.run.message
    assert first.step("add_up").outputs["parameters"]["Output"] == 12
    stored = get_pipeline_store(tracking_uri).get_pipeline_run(first.run_id)
    assert stored.status == first.status
    assert [s.task_id for s in get_pipeline_store(tracking_uri).list_steps(first.run_id)] == [
        "write_rows",
        "count_rows[0]",
        "count_rows[1]",
        "add_up",
    ]
    client = SlipwayClient(tracking_uri)
    data_run = first.step("write_rows").run_id or ""
    local = client.download_artifacts(data_run, "outputs/data", str(tmp_path / "dl"))
    assert Path(local).read_text().splitlines()[-1] == "row 3"

    second = run(rows_pipeline, {"rows": 4}, tracking_uri=tracking_uri)
    assert {s.status for s in second.steps} == {StepStatus.CACHED}
    assert second.step("add_up").outputs == first.step("add_up").outputs
