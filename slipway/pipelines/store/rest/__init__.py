"""The pipeline store of a remote server, over HTTP (:class:`RestPipelineStore`)."""

from slipway.pipelines.store.rest.store import RestPipelineStore

__all__ = ["RestPipelineStore"]
