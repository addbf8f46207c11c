"""The tracking server: MLflow's REST API 2.0 and the artifact proxy, as an ASGI app."""

from slipway.server.app import create_app
from slipway.server.settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]
