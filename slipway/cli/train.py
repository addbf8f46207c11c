"""``slipway train``: run a training script on N local workers, like ``torchrun``, or on a Ray
cluster (``--on ray``), as one tracked, restartable run; or write the Kubeflow PyTorchJob that
runs it on a Kubernetes cluster.

Options of ``slipway train`` are recognised anywhere on the line, and everything else is the
script's; after ``--``, everything is the script's. The training modules (and torch) are
imported when the command runs, so ``slipway --help`` stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from slipway.cli._output import CliState, print_error, tracking_uri_option

EMIT_FORMATS = ("pytorchjob",)
BACKEND_CHOICES = ("auto", "gloo", "nccl")
TARGET_CHOICES = ("local", "ray")
STRATEGY_CHOICES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
_COMMANDLINE = click.core.ParameterSource.COMMANDLINE
_EMIT_ONLY = ("output", "image", "nnodes", "elastic", "namespace", "job_name", "cpu", "memory")
_RAY_ONLY = (
    "ray_address",
    "placement_strategy",
    "resources_per_worker",
    "placement_timeout",
    "working_dir",
)
_LOCAL_ONLY = ("master_port", "force")


def _parse_elastic(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    low, sep, high = value.partition(":")
    if not sep or not low.strip().isdigit() or not high.strip().isdigit():
        raise click.BadParameter(f"{value!r}: use MIN:MAX, e.g. 1:4", param_hint="--elastic")
    return int(low), int(high)


@click.command(
    "train",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": True},
)
@click.argument("script", metavar="SCRIPT")
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED, metavar="[SCRIPT_ARGS]...")
@click.option(
    "--nproc",
    "--nproc-per-node",
    "nproc",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes (at most one per CPU with gloo, per GPU with nccl, unless --force).",
)
@click.option(
    "--backend",
    type=click.Choice(BACKEND_CHOICES),
    default="auto",
    show_default=True,
    help="Process-group backend for slipway.training.init_process_group(): auto is nccl "
    "with CUDA, else gloo.",
)
@click.option(
    "--max-restarts",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Restart all workers up to this many times when one fails; the script resumes from "
    "its last checkpoint.",
)
@click.option("--experiment", metavar="NAME", help="Experiment of the job's run (created).")
@click.option("--run-name", metavar="NAME", help="Name of the job's run.")
@click.option(
    "--master-port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Rendezvous port on 127.0.0.1 (MASTER_PORT) of the first attempt; 0 picks a free "
    "one. Restarts get free ports.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Stop the job (run FAILED) after this long: ends hung collectives too.",
)
@click.option("--force", is_flag=True, help="Start more workers than the machine holds.")
@click.option(
    "--system-metrics-interval",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="Per-rank CPU and memory samples (system/rank_<r>/...); 0 turns them off.",
)
@click.option("--quiet", is_flag=True, help="Do not copy the workers' output to the console.")
@click.option(
    "--on",
    "target",
    type=click.Choice(TARGET_CHOICES),
    default="local",
    show_default=True,
    help="Where the workers run: local processes, or one Ray actor per rank on a cluster.",
)
@click.option(
    "--ray-address",
    metavar="ADDR",
    help="With --on ray: the cluster (auto, HOST:PORT or ray://HOST:PORT); default "
    "RAY_ADDRESS, else a local Ray instance.",
)
@click.option(
    "--placement-strategy",
    type=click.Choice(STRATEGY_CHOICES),
    default="PACK",
    show_default=True,
    help="With --on ray: how the workers spread over the nodes.",
)
@click.option(
    "--resources-per-worker",
    metavar="NAME=AMOUNT,...",
    help="With --on ray: what each worker reserves, e.g. CPU=2,GPU=1 (default CPU=1, and "
    "GPU=1 with nccl).",
)
@click.option(
    "--placement-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="With --on ray: how long to wait for the workers' resources to be free.",
)
@click.option(
    "--working-dir",
    type=click.Path(exists=True, file_okay=False),
    metavar="DIR",
    help="With --on ray: ship this folder to every node (without .git, virtual environments, "
    "caches and .slipway); the workers run in their node's copy, so SCRIPT (inside DIR) and "
    "its modules need not be on the nodes.",
)
@click.option(
    "--emit",
    type=click.Choice(EMIT_FORMATS),
    help="Do not train: print the Kubeflow PyTorchJob manifest that runs this on a cluster.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --emit: write the manifest to this file instead of stdout.",
)
@click.option("--image", metavar="IMAGE", help="With --emit: the image (torch, slipway, script).")
@click.option(
    "--nnodes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="With --emit: pods (one Master, the rest Workers).",
)
@click.option(
    "--elastic", metavar="MIN:MAX", help="With --emit: an elastic job of MIN to MAX pods."
)
@click.option("--namespace", metavar="NS", help="With --emit: the job's namespace.")
@click.option("--job-name", metavar="NAME", help="With --emit: the job's name (default: script's).")
@click.option("--cpu", metavar="CPU", help="With --emit: CPU per pod, e.g. 4 or 500m.")
@click.option("--memory", metavar="MEM", help="With --emit: memory per pod, e.g. 16Gi.")
@click.option(
    "--gpus",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="With --emit: nvidia.com/gpu per pod.",
)
@tracking_uri_option
@click.pass_context
def train(
    ctx: click.Context,
    script: str,
    script_args: tuple[str, ...],
    nproc: int,
    backend: str,
    max_restarts: int,
    experiment: str | None,
    run_name: str | None,
    master_port: int,
    timeout: float | None,
    force: bool,
    system_metrics_interval: float,
    quiet: bool,
    target: str,
    ray_address: str | None,
    placement_strategy: str,
    resources_per_worker: str | None,
    placement_timeout: float,
    working_dir: str | None,
    emit: str | None,
    output: Path | None,
    image: str | None,
    nnodes: int,
    elastic: str | None,
    namespace: str | None,
    job_name: str | None,
    cpu: str | None,
    memory: str | None,
    gpus: int,
) -> None:
    """Run SCRIPT on --nproc local workers under PyTorch's elastic agent (what torchrun uses),
    or on a Ray cluster with --on ray (one actor per rank), with torchrun's environment (RANK,
    WORLD_SIZE, MASTER_ADDR...), as one tracked run.

    Rank 0's slipway.log_metric calls go to the job's run; every rank's logs become its
    artifacts logs/rank_<r>.stdout.txt and .stderr.txt. The run ends FINISHED, FAILED (the
    failing rank and its error in tags) or KILLED (Ctrl-C). Put the script's arguments after
    -- when one has the name of an option here.

    \b
    Examples:
      slipway train --nproc 4 train.py --epochs 5
      slipway train --nproc 2 --max-restarts 2 --experiment ddp train.py --lr 0.1
      slipway train --nproc 2 --timeout 600 train.py -- --timeout 30
      slipway train --nproc 8 --on ray --ray-address auto train.py --lr 0.1
      slipway train --nproc 4 --on ray --ray-address ray://head:10001 --working-dir . train.py
      slipway train --nproc 2 train.py --emit pytorchjob -o job.yaml
    """
    tracking_uri = ctx.ensure_object(CliState).tracking_uri
    args = list(script_args)
    ray_given = [name for name in _RAY_ONLY if ctx.get_parameter_source(name) is _COMMANDLINE]
    if emit is not None and (target == "ray" or ray_given):
        raise click.UsageError("--emit pytorchjob writes a Kubernetes job: leave out --on ray")
    if emit is not None:
        _emit(
            script,
            args,
            output=output,
            image=image,
            nnodes=nnodes,
            nproc=nproc,
            max_restarts=max_restarts,
            elastic=_parse_elastic(elastic),
            backend=backend,
            namespace=namespace,
            job_name=job_name,
            cpu=cpu,
            memory=memory,
            gpus=gpus,
            tracking_uri=tracking_uri,
            experiment=experiment,
            timeout=timeout,
        )
        return
    given = [name for name in _EMIT_ONLY if ctx.get_parameter_source(name) is _COMMANDLINE]
    if ctx.get_parameter_source("gpus") is _COMMANDLINE:
        given.append("gpus")
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise click.UsageError(
            f"{flags} go with --emit pytorchjob. If they are the script's own arguments, put "
            "them after --: slipway train [OPTIONS] SCRIPT -- [SCRIPT_ARGS]..."
        )
    misplaced = (
        [n for n in _LOCAL_ONLY if ctx.get_parameter_source(n) is _COMMANDLINE]
        if target == "ray"
        else ray_given
    )
    if misplaced:
        flags = ", ".join("--" + name.replace("_", "-") for name in misplaced)
        where = "local jobs" if target == "ray" else "--on ray"
        raise click.UsageError(f"{flags} go with {where}")
    resources = None
    if resources_per_worker is not None:
        from slipway.training.ray_placement import parse_resources

        resources = parse_resources(resources_per_worker)

    from slipway.training.launcher import launch

    try:
        result = launch(
            script,
            workers=nproc,
            backend=backend,
            max_restarts=max_restarts,
            args=args,
            experiment_name=experiment,
            run_name=run_name,
            tracking_uri=tracking_uri,
            master_port=master_port,
            timeout=timeout,
            force=force,
            system_metrics_interval=system_metrics_interval,
            quiet=quiet,
            on=target,
            ray_address=ray_address,
            resources_per_worker=resources,
            placement_strategy=placement_strategy,
            placement_timeout=placement_timeout,
            working_dir=working_dir,
        )
    except KeyboardInterrupt:
        print_error("interrupted: the workers were stopped and the run marked KILLED")
        raise click.exceptions.Exit(130) from None
    restarts = f"{result.restarts} restart{'s' if result.restarts != 1 else ''}"
    if result.succeeded:
        click.echo(f"Run {result.run_id} FINISHED ({nproc} workers, {restarts})", err=True)
        return
    print_error(f"run {result.run_id} {result.status} ({restarts}): {result.error}")
    raise click.exceptions.Exit(1)


def _emit(
    script: str,
    args: list[str],
    *,
    output: Path | None,
    image: str | None,
    nnodes: int,
    nproc: int,
    max_restarts: int,
    elastic: tuple[int, int] | None,
    backend: str,
    namespace: str | None,
    job_name: str | None,
    cpu: str | None,
    memory: str | None,
    gpus: int,
    tracking_uri: str | None,
    experiment: str | None,
    timeout: float | None,
) -> None:
    from slipway.training.manifests import DEFAULT_IMAGE, pytorchjob_manifest, pytorchjob_yaml

    uri = tracking_uri or os.environ.get("SLIPWAY_TRACKING_URI") or None
    manifest = pytorchjob_manifest(
        script,
        args,
        name=job_name,
        namespace=namespace,
        image=image or DEFAULT_IMAGE,
        nnodes=nnodes,
        nproc_per_node=nproc,
        max_restarts=max_restarts,
        elastic=elastic,
        backend=backend,
        cpu=cpu,
        memory=memory,
        gpus=gpus,
        tracking_uri=uri,
        experiment_name=experiment,
        timeout=timeout,
    )
    text = pytorchjob_yaml(manifest, tracking_uri=uri)
    if output is None:
        click.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    click.echo(f"Wrote the PyTorchJob manifest to {output}", err=True)
