"""``slipway models predict`` and ``slipway models dockerfile``: running a model from files,
in this environment or its own, and packaging it as a Docker build context.

The commands join the ``models`` group; importing this module registers them.
"""

from __future__ import annotations

from pathlib import Path

import click

import slipway
from slipway.cli._output import CliState, make_console, pass_state, tracking_uri_option
from slipway.cli.models import models


def _use_tracking_uri(state: CliState) -> None:
    """Model URIs (``runs:/``, ``models:/``) resolve against the command's tracking URI."""
    if state.tracking_uri:
        slipway.set_tracking_uri(state.tracking_uri)


@models.command("predict")
@click.argument("model_uri", metavar="URI")
@click.option(
    "--input",
    "-i",
    "input_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A .csv, .parquet or .json file (MLflow's scoring formats: dataframe_split, "
    "dataframe_records, instances or inputs, with optional params).",
)
@click.option(
    "--output",
    "-o",
    "output_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help='Where {"predictions": ...} JSON goes. Default: stdout.',
)
@click.option(
    "--env-manager",
    type=click.Choice(["local", "venv"]),
    default="local",
    show_default=True,
    help="local: this environment. venv: a virtual environment with the model's own "
    "requirements, built once and cached (SLIPWAY_ENV_CACHE, default ~/.cache/slipway/envs).",
)
@click.option("--params", metavar="JSON", help="Params for predict, e.g. '{\"top_k\": 3}'.")
@tracking_uri_option
@pass_state
def predict_command(
    state: CliState,
    model_uri: str,
    input_path: Path,
    output_path: Path | None,
    env_manager: str,
    params: str | None,
) -> None:
    """Predict on a file with the model at URI; print or write the predictions as JSON.

    URI is runs:/<run_id>/<path>, models:/<name>/<version>, models:/<name>@<alias> or a
    local path. Progress goes to stderr, so stdout holds only the predictions.

    \b
    Examples:
      slipway models predict models:/iris@champion -i batch.csv -o predictions.json
      slipway models predict runs:/1a2b3c/model -i request.json --env-manager venv
    """
    from slipway.models.predict import parse_params, predict

    _use_tracking_uri(state)
    predict(
        model_uri,
        input_path,
        output_path,
        env_manager=env_manager,
        params=parse_params(params),
    )


@models.command("dockerfile")
@click.argument("model_uri", metavar="URI")
@click.option(
    "--output",
    "-o",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The build context folder to write (created; must not hold a Dockerfile or model/).",
)
@tracking_uri_option
@pass_state
def dockerfile_command(state: CliState, model_uri: str, out_dir: Path) -> None:
    """Write a Docker build context that serves the model at URI on port 8080.

    The folder gets the model (model/), a Dockerfile and a .dockerignore. The image runs
    "slipway serve", the model-serving command.

    \b
    Example:
      slipway models dockerfile models:/iris@champion -o iris-image
      docker build -t iris iris-image && docker run -p 8080:8080 iris
    """
    from slipway.models.dockerfile import write_dockerfile

    _use_tracking_uri(state)
    path = write_dockerfile(model_uri, out_dir)
    make_console().print(f"Wrote {path} and the model to {path.parent / 'model'}", soft_wrap=True)
