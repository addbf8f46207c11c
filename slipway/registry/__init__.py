"""The model registry: registered models, versions, aliases, stages, approvals and lineage."""
