"""The tracking store of a remote tracking server, over MLflow's REST API 2.0.

:class:`RestTrackingStore` (``store``) sends each store call as one request through the
transport in ``http`` (retries, timeouts, auth, TLS), parses answers with ``convert``, and keeps
writes in the on-disk ``spool`` while the server is away.
"""

from slipway.tracking.store.rest.store import RestTrackingStore

__all__ = ["RestTrackingStore"]
