"""The registry store of a remote server, over HTTP.

:class:`RestRegistryStore` (``store``) sends each store call as one request through the
tracking store's transport (retries, timeouts, auth, TLS) and parses answers with ``convert``.
"""

from slipway.registry.store.rest.store import RestRegistryStore

__all__ = ["RestRegistryStore"]
