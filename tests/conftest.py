"""Shared fixtures: stores on real SQLite files, a real PostgreSQL server, and a tracking
server over HTTP.

PostgreSQL comes from ``SLIPWAY_TEST_POSTGRES_URI`` (default: the server on 127.0.0.1:5432,
database ``test``). When it cannot be reached the PostgreSQL tests fail; set
``SLIPWAY_TEST_SKIP_POSTGRES=1`` to skip them on a machine that has no server.

The ``rest`` backend is a :class:`RestTrackingStore` talking to a real uvicorn server on
loopback. One server runs per session (and xdist worker); each test gets a freshly built
server app on an empty SQLite store of its own, swapped in behind that server, so tests stay
isolated without paying for a server start (and stop) each.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from slipway.pipelines.store import clear_pipeline_store_cache
from slipway.tracking import fluent
from slipway.tracking import uri as uris
from slipway.tracking.store.base import AbstractTrackingStore
from slipway.tracking.store.rest import RestTrackingStore
from slipway.tracking.store.rest.http import HttpConfig
from slipway.tracking.store.sql import SqlTrackingStore

POSTGRES_URI = os.environ.get(
    "SLIPWAY_TEST_POSTGRES_URI", "postgresql://postgres@127.0.0.1:5432/test"
)
BACKENDS = ["sqlite", "postgresql"]
STORE_BACKENDS = [*BACKENDS, "rest"]
CONTRACT_DIR = Path(__file__).parent / "tracking" / "store"


def pytest_configure(config: pytest.Config) -> None:
    """One Slipway cache folder (the SQLite schema template) for the whole session, never the
    user's: set before xdist starts its workers and the tests their processes, which inherit
    it; removed at the end by the process that made it."""
    if not os.environ.get("SLIPWAY_CACHE_DIR"):
        import shutil
        import tempfile

        folder = tempfile.mkdtemp(prefix="slipway-test-cache-")
        os.environ["SLIPWAY_CACHE_DIR"] = folder
        config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that uses ``store`` once per backend. The store contract suite (the tests
    in tests/tracking/store) runs on all of ``STORE_BACKENDS``; elsewhere a test gets the SQL
    backends, unless its module lists the ones it wants in a ``STORE_BACKENDS`` variable."""
    if "store" not in metafunc.fixturenames:
        return
    if any("store" in m.args[0] for m in metafunc.definition.iter_markers("parametrize")):
        return  # the test chose its backends itself
    backends = getattr(metafunc.module, "STORE_BACKENDS", None)
    if backends is None:
        in_contract_dir = Path(metafunc.module.__file__).parent == CONTRACT_DIR
        backends = STORE_BACKENDS if in_contract_dir else BACKENDS
    metafunc.parametrize("store", backends, indirect=True)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep each ``xdist_group`` on one xdist worker under ``--dist loadgroup``.

    xdist marks a grouped test by appending ``@group`` to its node id through ``_nodeid``,
    which pytest 9.2 no longer reads (``nodeid`` comes from the structured id): the groups
    silently spread over the workers, and each worker started a Ray cluster of its own. The
    suffix goes on the structured id instead, once, where xdist's own attempt did not take.
    """
    if not getattr(config.option, "loadgroup", False):
        return
    from _pytest.nodeid import NodeId

    for item in items:
        names = sorted(
            {
                str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                for mark in item.iter_markers("xdist_group")
            }
        )
        suffix = "@" + "_".join(names)
        if names and not item.nodeid.endswith(suffix):
            item._id = NodeId.parse(item.nodeid + suffix)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database of its own for this test session (and xdist worker), dropped at the end."""
    if os.environ.get("SLIPWAY_TEST_SKIP_POSTGRES") == "1":
        pytest.skip("SLIPWAY_TEST_SKIP_POSTGRES=1: PostgreSQL tests skipped on request")
    admin_uri = make_url(POSTGRES_URI).set(drivername="postgresql+psycopg")
    name = f"slipway_test_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{uuid.uuid4().hex[:6]}"
    try:
        admin = create_engine(admin_uri, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.fail(
            f"PostgreSQL at {POSTGRES_URI} is unreachable ({exc.__class__.__name__}: {exc}). "
            "Start it, point SLIPWAY_TEST_POSTGRES_URI at one, or set "
            "SLIPWAY_TEST_SKIP_POSTGRES=1 to skip these tests.",
            pytrace=False,
        )
    yield (
        admin_uri.set(database=name)
        .render_as_string(hide_password=False)
        .replace("postgresql+psycopg://", "postgresql://")
    )
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _reset_postgres(uri: str) -> None:
    engine = create_engine(make_url(uri).set(drivername="postgresql+psycopg"))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def empty_postgres(uri: str) -> str:
    """The PostgreSQL database ``uri``, emptied: truncated when it already has the current
    schema (much faster than migrating again for every test), else dropped to nothing."""
    from slipway.tracking.store.sql.engine import SCHEMA_HEAD

    engine = create_engine(make_url(uri).set(drivername="postgresql+psycopg"))
    with engine.begin() as conn:
        tables = list(
            conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            ).scalars()
        )
        head = None
        if "alembic_version" in tables:
            head = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        if head == SCHEMA_HEAD:
            names = ", ".join(f'"{t}"' for t in tables if t != "alembic_version")
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return uri


@pytest.fixture
def db_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database URI for each backend in ``BACKENDS`` (parametrise indirectly,
    or use the ``store`` fixture, which is parametrised already)."""
    backend = getattr(request, "param", "sqlite")
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    uri: str = request.getfixturevalue("postgres_database")
    _reset_postgres(uri)
    return uri


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SwappableApp:
    """An ASGI app that hands each request to the app mounted at the moment (503 when none),
    and answers the server's lifespan events itself."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        app = self.app
        if app is None:
            body = b'{"error_code": "TEMPORARILY_UNAVAILABLE", "message": "no app mounted"}'
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)


class RestServer:
    """A uvicorn server on a loopback port whose app can be swapped between tests."""

    def __init__(self) -> None:
        import uvicorn

        self.front = SwappableApp()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.front, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
            )
        )
        self.thread = threading.Thread(
            target=self.server.run, name="rest-store-server", daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the tracking server for the rest backend did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def rest_server() -> Iterator[RestServer]:
    server = RestServer()
    yield server
    server.stop()


def _rest_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RestTrackingStore]:
    from slipway.server import ServerSettings, create_app

    server: RestServer = request.getfixturevalue("rest_server")
    app = create_app(
        ServerSettings(
            backend_store_uri=str(tmp_path / "server"),
            artifacts_destination=str(tmp_path / "artifacts"),
        )
    )
    server.front.app = app
    # Fail fast on server errors; a test that is about retries builds its own store.
    rest = RestTrackingStore(
        server.url,
        HttpConfig(max_retries=1, backoff_factor=0.01, timeout=30),
        spool_dir=tmp_path / "spool",
    )
    yield rest
    rest.close()
    server.front.app = None
    app.state.context.close()


@pytest.fixture
def rest_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RestTrackingStore]:
    """A RestTrackingStore on a live tracking server with an empty store of its own."""
    yield from _rest_store(request, tmp_path)


@pytest.fixture
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AbstractTrackingStore]:
    """A new store on an empty database, once per backend (see ``pytest_generate_tests``):
    SqlTrackingStore on SQLite and on PostgreSQL, and RestTrackingStore on a live tracking
    server (itself on SQLite)."""
    backend = getattr(request, "param", "sqlite")
    if backend == "rest":
        yield from _rest_store(request, tmp_path)
        return
    if backend == "sqlite":
        uri = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        uri = request.getfixturevalue("postgres_database")
        _reset_postgres(uri)
    s = SqlTrackingStore(uri, str(tmp_path / "artifacts"))
    yield s
    s.close()


@pytest.fixture
def tracking_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The fluent API pointed at a fresh folder store, with no run or experiment left over."""
    folder = tmp_path / "tracking"
    monkeypatch.chdir(tmp_path)
    for var in (
        "SLIPWAY_TRACKING_URI",
        "SLIPWAY_EXPERIMENT_ID",
        "SLIPWAY_EXPERIMENT_NAME",
        "SLIPWAY_RUN_ID",
        "SLIPWAY_ARTIFACT_ROOT",
        "SLIPWAY_ASYNC_LOGGING",
    ):
        monkeypatch.delenv(var, raising=False)
    fluent.set_tracking_uri(str(folder))
    yield folder
    while fluent.active_run() is not None:
        fluent.end_run()
    fluent.set_tracking_uri(None)
    fluent.set_async_logging(True)
    with fluent._clients_lock:
        for client in fluent._clients.values():
            if client._async is not None:
                client._async.close()
        fluent._clients.clear()
    clear_pipeline_store_cache()
    uris.clear_store_cache()


# -- a real Ray cluster on loopback -----------------------------------------------------------


class RayNodeProcess:
    """One ``ray start --block`` process (and the Ray processes under it, in its own process
    group); killing it takes the node away as a lost machine would."""

    def __init__(self, proc: Any, tag: str) -> None:
        self.proc = proc
        self.tag = tag
        self.node_id = ""

    def kill(self) -> None:
        import signal

        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)


class RayCluster:
    """A head with 2 CPUs and a second node with 1 CPU, both on this machine, started with the
    venv's ``ray`` command. Node ids are found through a custom resource unique to each node."""

    HEAD_CPUS = 2
    SECOND_CPUS = 1

    def __init__(self, temp_dir: Path) -> None:
        self.temp_dir = temp_dir
        self.port = free_port()
        self.client_port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: list[RayNodeProcess] = []
        repo = Path(__file__).resolve().parent.parent
        self.env = {
            **os.environ,
            "RAY_USAGE_STATS_ENABLED": "0",
            # A local `ray.init()` elsewhere on the machine leaves ~/.ray/auth_token, which
            # `ray start` would then require of drivers that name the address: keep it off.
            "RAY_AUTH_MODE": "disabled",
            "PYTHONPATH": os.pathsep.join([str(repo), str(repo / "tests")]),
        }
        self.env.pop("RAY_ADDRESS", None)
        try:
            self._start_nodes(temp_dir)
        except BaseException:
            self.stop()  # no head or node left running when the cluster did not come up
            raise

    def _start_nodes(self, temp_dir: Path) -> None:
        head = self._start(
            [
                "--head",
                f"--port={self.port}",
                f"--ray-client-server-port={self.client_port}",
                f"--temp-dir={temp_dir}",
                "--include-dashboard=false",
            ],
            self.HEAD_CPUS,
            None,
        )
        self._wait_for_port(self.port, head)
        from slipway.engines import ray as ray_engine

        ray_engine.connect(self.address)
        self.head_node_id = self._node_id(head)
        self.second = self.add_node(num_cpus=self.SECOND_CPUS)
        self.second_node_id = self.second.node_id

    def _start(
        self, args: list[str], num_cpus: int, resources: dict[str, float] | None
    ) -> RayNodeProcess:
        import json
        import subprocess
        import sys

        tag = f"node_{uuid.uuid4().hex[:8]}"
        ray_bin = str(Path(sys.executable).with_name("ray"))
        ports = [
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
        ]
        cmd = [
            ray_bin,
            "start",
            "--block",
            *args,
            *ports,
            f"--num-cpus={num_cpus}",
            "--num-gpus=0",
            "--object-store-memory=150000000",
            f"--resources={json.dumps({tag: 1.0, **(resources or {})})}",
            "--disable-usage-stats",
        ]
        with open(self.temp_dir / f"{tag}.log", "wb") as log:
            proc = subprocess.Popen(
                cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        node = RayNodeProcess(proc, tag)
        self.nodes.append(node)
        return node

    def _wait_for_port(self, port: int, node: RayNodeProcess) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if node.proc.poll() is not None:
                raise RuntimeError(f"ray start exited with {node.proc.returncode}")
            with socket.socket() as s:
                s.settimeout(0.5)
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.2)
        raise RuntimeError("the Ray head did not open its port in 120 s")

    def _node_id(self, node: RayNodeProcess) -> str:
        from slipway.engines import ray as ray_engine

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if node.proc.poll() is not None:
                raise RuntimeError(f"ray start exited with {node.proc.returncode}")
            for found in ray_engine.cluster_nodes():
                if node.tag in found.resources:
                    node.node_id = found.node_id
                    return node.node_id
            time.sleep(0.3)
        raise RuntimeError("a Ray node did not join the cluster in 120 s")

    def add_node(
        self, num_cpus: int = 1, resources: dict[str, float] | None = None
    ) -> RayNodeProcess:
        """Another node joining the head; ``kill()`` it to lose it mid-run."""
        node = self._start([f"--address={self.address}"], num_cpus, resources)
        self._node_id(node)
        return node

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            from slipway.engines import ray as ray_engine

            ray_engine.shutdown()
        for node in reversed(self.nodes):
            node.kill()


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    """One real two-node Ray cluster per session; modules that use it are in the xdist group
    "ray" (``--dist loadgroup``), so one worker starts it."""
    pytest.importorskip("ray", reason="Ray is an extra: pip install 'slipway[ray]'")
    import tempfile

    # Ray's socket paths must stay short: a folder of its own directly under the temp root.
    temp_dir = Path(tempfile.mkdtemp(prefix="rayt-"))
    cluster = RayCluster(temp_dir)
    try:
        yield cluster
    finally:
        cluster.stop()
        import shutil

        shutil.rmtree(temp_dir, ignore_errors=True)
