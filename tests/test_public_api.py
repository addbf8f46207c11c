"""The public surface is a deliberate choice: a new export changes this test."""

import slipway
import slipway.entities
import slipway.exceptions

EXPECTED = [
    "ActiveRun",
    "Dataset",
    "DatasetInput",
    "Experiment",
    "Metric",
    "Param",
    "RegistryClient",
    "Run",
    "RunStatus",
    "RunTag",
    "SlipwayClient",
    "SlipwayError",
    "ViewType",
    "__version__",
    "active_run",
    "delete_tag",
    "end_run",
    "flush",
    "get_artifact_uri",
    "get_tracking_uri",
    "last_active_run_id",
    "lineage",
    "log_artifact",
    "log_artifacts",
    "log_dict",
    "log_figure",
    "log_input",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_text",
    "register_model",
    "registry",
    "search_runs",
    "set_async_logging",
    "set_experiment",
    "set_tag",
    "set_tags",
    "set_tracking_uri",
    "start_run",
]


def test_all_is_pinned_and_sorted() -> None:
    assert slipway.__all__ == EXPECTED
    assert sorted(slipway.__all__) == slipway.__all__


def test_every_export_exists() -> None:
    for module in (slipway, slipway.entities, slipway.exceptions):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
