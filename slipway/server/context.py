"""What every route needs, built once per app and passed to the route factories (no globals)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from slipway.artifacts import get_artifact_repository
from slipway.artifacts.base import ArtifactRepository
from slipway.artifacts.paths import join_uri, safe_relative_path
from slipway.pipelines.store.base import AbstractPipelineStore
from slipway.registry.store.base import AbstractRegistryStore
from slipway.server.settings import ServerSettings
from slipway.tracking import uri as uris
from slipway.tracking.store.base import AbstractTrackingStore
from slipway.tuning.store.base import AbstractTuningStore

PROXY_SCHEME = "mlflow-artifacts"


@dataclass
class ServerContext:
    settings: ServerSettings
    store: AbstractTrackingStore
    artifacts_destination: str
    registry_store: AbstractRegistryStore
    pipeline_store: AbstractPipelineStore
    tuning_store: AbstractTuningStore

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> ServerContext:
        db_uri, store_artifacts = uris.resolve(settings.backend_store_uri)
        destination = settings.artifacts_destination or store_artifacts
        root = settings.default_artifact_root or (
            f"{PROXY_SCHEME}:/" if settings.serve_artifacts else destination
        )
        from slipway.pipelines.store.sql import SqlPipelineStore
        from slipway.registry.store.sql import SqlRegistryStore
        from slipway.tracking.store.sql import SqlTrackingStore
        from slipway.tuning.store.sql import SqlTuningStore

        store = SqlTrackingStore(db_uri, root)
        return cls(
            settings,
            store,
            destination,
            SqlRegistryStore(store),
            SqlPipelineStore(store),
            SqlTuningStore(store),
        )

    def destination_repository(self, path: str = "") -> ArtifactRepository:
        """The repository at ``<artifacts destination>/<path>`` (path checked)."""
        rel = safe_relative_path(path)
        return get_artifact_repository(
            join_uri(self.artifacts_destination, rel) if rel else self.artifacts_destination
        )

    def repository_for(self, artifact_uri: str) -> ArtifactRepository:
        """The repository behind a run's artifact URI; ``mlflow-artifacts:`` URIs map into the
        artifacts destination, anything else is opened directly by the server."""
        if artifact_uri.startswith(f"{PROXY_SCHEME}:"):
            return self.destination_repository(urlsplit(artifact_uri).path.lstrip("/"))
        return get_artifact_repository(artifact_uri)

    def close(self) -> None:
        self.tuning_store.close()
        self.pipeline_store.close()
        self.registry_store.close()
        self.store.close()
