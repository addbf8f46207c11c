"""``slipway models``: the model registry from the command line.

Registered models and versions, aliases and stages, approval policies and requests, the audit
log and lineage. Whoever runs a command is the actor recorded in the audit log:
``SLIPWAY_USER`` when set, else the login name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.tree import Tree

from slipway.cli._output import (
    CliState,
    SlipwayGroup,
    cell,
    collect,
    format_time,
    json_option,
    make_console,
    pass_state,
    plain_table,
    print_json,
    tracking_uri_option,
)
from slipway.entities.registry import (
    AuditEvent,
    LineageGraph,
    ModelVersion,
    RequestStatus,
    TransitionRequest,
)
from slipway.registry.client import RegistryClient

F = TypeVar("F", bound=Callable[..., Any])
REQUEST_STATUSES = [s.value.lower() for s in RequestStatus]


def registry(state: CliState) -> RegistryClient:
    return RegistryClient(state.tracking_uri)


def as_dict(item: Any) -> Any:
    return dataclasses.asdict(item)


def _parse_tags(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE")
        tags[key.strip()] = value
    return tags


def target_options(func: F) -> F:
    """``--alias A`` or ``--stage S``: what a transition moves."""
    func = click.option("--stage", metavar="STAGE", help="A stage: Staging, Production, ...")(func)
    return click.option("--alias", metavar="ALIAS", help="An alias, e.g. champion.")(func)


@click.group(cls=SlipwayGroup)
def models() -> None:
    """Registered models, versions, aliases, stages, approvals and lineage.

    \b
    Examples:
      slipway models register runs:/1a2b3c/model iris
      slipway models alias iris challenger 3
      slipway models policy iris --alias champion
      slipway models request iris 3 --alias champion --comment "beats v2"
      slipway models approve iris 3 --alias champion --comment ok
      slipway models lineage models:/iris@champion
    """


# -- registered models and versions ----------------------------------------------------------


@models.command("list")
@click.option("--filter", "filter_string", metavar="FILTER", help="e.g. \"name LIKE 'iris%'\"")
@click.option("--max-results", type=click.IntRange(min=1), default=1000, show_default=True)
@json_option
@tracking_uri_option
@pass_state
def list_models(
    state: CliState, filter_string: str | None, max_results: int, as_json: bool
) -> None:
    """List registered models."""
    client = registry(state)
    found, more = collect(
        lambda n, token: client.search_registered_models(filter_string, min(n, 1000), None, token),
        max_results,
    )
    if as_json:
        print_json([as_dict(m) for m in found])
        return
    console = make_console()
    if not found:
        console.print("No registered models.")
        return
    table = plain_table()
    for title in ("Name", "Latest", "Aliases", "Updated", "Description"):
        table.add_column(title, overflow="fold")
    for rm in found:
        latest = max((int(v.version) for v in rm.latest_versions), default=None)
        aliases = ", ".join(f"{a.alias}=v{a.version}" for a in rm.aliases)
        table.add_row(
            cell(rm.name),
            cell(f"v{latest}" if latest is not None else "-"),
            cell(aliases or "-"),
            cell(format_time(rm.last_updated_timestamp)),
            cell(rm.description or ""),
        )
    console.print(table)
    if more:
        console.print(f"Showing the first {len(found)}; raise --max-results.", style="dim")


@models.command("versions")
@click.argument("name")
@click.option("--filter", "filter_string", metavar="FILTER", help="Extra filter, e.g. run_id=...")
@json_option
@tracking_uri_option
@pass_state
def list_versions(state: CliState, name: str, filter_string: str | None, as_json: bool) -> None:
    """List the versions of model NAME, newest first."""
    client = registry(state)
    client.get_registered_model(name)  # a clear error for an unknown model
    quoted = name.replace("'", "\\'")
    query = f"name = '{quoted}'" + (f" AND {filter_string}" if filter_string else "")
    found = list(client.search_model_versions(query, order_by=["version_number DESC"]))
    if as_json:
        print_json([as_dict(v) for v in found])
        return
    table = plain_table()
    for title in ("Version", "Stage", "Aliases", "Status", "Run", "Created", "Source"):
        table.add_column(title, overflow="fold")
    for mv in found:
        table.add_row(*_version_cells(mv))
    make_console().print(table if found else f"Model {name!r} has no versions.")


def _version_cells(mv: ModelVersion) -> list[Any]:
    return [
        cell(mv.version),
        cell(mv.current_stage),
        cell(", ".join(mv.aliases) or "-"),
        cell(str(mv.status)),
        cell((mv.run_id or "-")[:8]),
        cell(format_time(mv.creation_timestamp)),
        cell(mv.source),
    ]


@models.command("register")
@click.argument("model_uri")
@click.argument("name")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", callback=_parse_tags)
@click.option("--description", metavar="TEXT")
@tracking_uri_option
@pass_state
def register(
    state: CliState, model_uri: str, name: str, tags: dict[str, str], description: str | None
) -> None:
    """Register MODEL_URI (runs:/<run>/<path>, models:/..., or an artifact URI) as a new
    version of NAME."""
    mv = registry(state).register_model(model_uri, name, tags or None, description)
    click.echo(f"Registered {mv.name} version {mv.version} from {mv.source}")


@models.command("delete")
@click.argument("name")
@click.option("--version", metavar="V", help="Delete only this version.")
@click.confirmation_option(prompt="Delete for good?", help="Do not ask for confirmation.")
@tracking_uri_option
@pass_state
def delete(state: CliState, name: str, version: str | None) -> None:
    """Delete model NAME (with its versions), or one version of it."""
    client = registry(state)
    if version is None:
        client.delete_registered_model(name)
        click.echo(f"Deleted model {name!r} and its versions.")
    else:
        client.delete_model_version(name, version)
        click.echo(f"Deleted {name} version {version}.")


# -- aliases, stages, approvals --------------------------------------------------------------


@models.command("alias")
@click.argument("name")
@click.argument("alias")
@click.argument("version", required=False)
@click.option("--delete", "remove", is_flag=True, help="Remove the alias instead.")
@tracking_uri_option
@pass_state
def alias(state: CliState, name: str, alias: str, version: str | None, remove: bool) -> None:
    """Point ALIAS of model NAME at VERSION (or remove it with --delete)."""
    client = registry(state)
    if remove:
        client.delete_alias(name, alias)
        click.echo(f"Removed alias {alias!r} from {name}.")
        return
    if version is None:
        raise click.UsageError("Give the VERSION the alias should point at, or --delete.")
    client.set_alias(name, alias, version)
    click.echo(f"{name}@{alias} -> version {version}")


@models.command("transition")
@click.argument("name")
@click.argument("version")
@click.argument("stage")
@click.option("--archive-existing", is_flag=True, help="Archive the versions now in STAGE.")
@tracking_uri_option
@pass_state
def transition(
    state: CliState, name: str, version: str, stage: str, archive_existing: bool
) -> None:
    """Move VERSION of NAME to STAGE (None, Staging, Production, Archived)."""
    mv = registry(state).transition_stage(name, version, stage, archive_existing)
    click.echo(f"{mv.name} version {mv.version} is now in {mv.current_stage}.")


@models.command("policy")
@click.argument("name")
@target_options
@click.option("--allow-self-approval", is_flag=True, help="Let requesters approve their own.")
@click.option("--remove", is_flag=True, help="Stop requiring approval for this target.")
@click.option("--list", "show", is_flag=True, help="List the model's policies.")
@tracking_uri_option
@pass_state
def policy(
    state: CliState,
    name: str,
    alias: str | None,
    stage: str | None,
    allow_self_approval: bool,
    remove: bool,
    show: bool,
) -> None:
    """Require approval to move an alias (or into a stage) of NAME."""
    client = registry(state)
    if show:
        for item in client.approval_policies(name):
            self_ok = " (self-approval allowed)" if item.allow_self_approval else ""
            click.echo(f"{item.target_kind} {item.target}{self_ok}")
        return
    if remove:
        client.remove_approval_requirement(name, alias, stage)
        click.echo(f"Moving {alias or stage!r} of {name} no longer needs approval.")
        return
    made = client.require_approval(name, alias, stage, allow_self_approval)
    click.echo(f"Moving {made.target_kind} {made.target!r} of {name} now needs an approval.")


@models.command("request")
@click.argument("name")
@click.argument("version")
@target_options
@click.option("--comment", metavar="TEXT", help="Why: shown to the reviewer.")
@click.option("--archive-existing", is_flag=True, help="For stages: archive the versions there.")
@tracking_uri_option
@pass_state
def request(
    state: CliState,
    name: str,
    version: str,
    alias: str | None,
    stage: str | None,
    comment: str | None,
    archive_existing: bool,
) -> None:
    """Ask for an alias (or stage) of NAME to move to VERSION; a reviewer approves it."""
    req = registry(state).request_transition(name, version, alias, stage, comment, archive_existing)
    click.echo(
        f"Request {req.request_id} pending: {req.target_kind} {req.target!r} of {name} -> "
        f"version {version}"
    )


def decision_options(func: F) -> F:
    """NAME VERSION --alias/--stage, or --id: which pending request a decision is about."""
    for option in (
        click.option("--comment", metavar="TEXT", help="Recorded with the decision."),
        click.option("--id", "request_id", metavar="REQUEST_ID", help="The request, by id."),
        target_options,
        click.argument("version", required=False),
        click.argument("name", required=False),
    ):
        func = option(func)
    return func


def _decide(state: CliState, approve: bool, **how: Any) -> None:
    request_id = how.pop("request_id")
    if request_id is None and (how["name"] is None or how["version"] is None):
        raise click.UsageError("Give NAME VERSION and --alias or --stage, or --id REQUEST_ID.")
    client = registry(state)
    req = (client.approve if approve else client.reject)(request_id, **how)
    if not approve:
        click.echo(f"Rejected request {req.request_id}.")
    elif req.target_kind == "alias":
        click.echo(f"Approved request {req.request_id}: {req.name}@{req.target} -> v{req.version}")
    else:
        click.echo(f"Approved request {req.request_id}: {req.name} v{req.version} -> {req.target}")


@models.command("approve")
@decision_options
@tracking_uri_option
@pass_state
def approve(state: CliState, /, **how: Any) -> None:
    """Approve the pending request to move an alias (or stage) of NAME to VERSION; the alias
    (or stage) moves."""
    _decide(state, True, **how)


@models.command("reject")
@decision_options
@tracking_uri_option
@pass_state
def reject(state: CliState, /, **how: Any) -> None:
    """Reject the pending request to move an alias (or stage) of NAME to VERSION."""
    _decide(state, False, **how)


@models.command("requests")
@click.argument("name", required=False)
@click.option("--version", metavar="V")
@click.option(
    "--status",
    type=click.Choice([*REQUEST_STATUSES, "all"], case_sensitive=False),
    default="pending",
    show_default=True,
)
@json_option
@tracking_uri_option
@pass_state
def requests(
    state: CliState, name: str | None, version: str | None, status: str, as_json: bool
) -> None:
    """List transition requests (pending ones by default), newest first."""
    wanted = None if status.lower() == "all" else status
    found = registry(state).list_requests(name, version, wanted)
    if as_json:
        print_json([as_dict(r) for r in found])
        return
    if not found:
        make_console().print("No requests.")
        return
    table = plain_table()
    for title in ("Id", "Model", "Version", "Target", "Status", "By", "Comment", "Decided by"):
        table.add_column(title, overflow="fold")
    for r in found:
        table.add_row(*_request_cells(r))
    make_console().print(table)


def _request_cells(r: TransitionRequest) -> list[Any]:
    decided = f"{r.decided_by}: {r.decision_comment or ''}".strip(": ") if r.decided_by else "-"
    return [
        cell(r.request_id[:8]),
        cell(r.name),
        cell(r.version),
        cell(f"{r.target_kind} {r.target}"),
        cell(str(r.status)),
        cell(r.requested_by),
        cell(r.comment or ""),
        cell(decided),
    ]


@models.command("audit")
@click.argument("name", required=False)
@click.option("--version", metavar="V")
@click.option("--max-results", type=click.IntRange(min=1), default=1000, show_default=True)
@json_option
@tracking_uri_option
@pass_state
def audit(
    state: CliState, name: str | None, version: str | None, max_results: int, as_json: bool
) -> None:
    """The registry's audit log: who did what, when, with which comment."""
    events = registry(state).audit_log(name, version, max_results)
    if as_json:
        print_json([as_dict(e) for e in events])
        return
    table = plain_table()
    for title in ("When", "Who", "Action", "Model", "Version", "Details"):
        table.add_column(title, overflow="fold")
    for e in events:
        table.add_row(*_event_cells(e))
    make_console().print(table if events else "No audit events.")


def _event_cells(e: AuditEvent) -> list[Any]:
    details = ", ".join(f"{k}={v}" for k, v in sorted(e.details.items()) if v not in (None, ""))
    return [
        cell(format_time(e.timestamp)),
        cell(e.actor),
        cell(e.action),
        cell(e.name),
        cell(e.version or "-"),
        cell(details),
    ]


# -- lineage ---------------------------------------------------------------------------------


@models.command("lineage")
@click.argument("model_uri", required=False)
@click.option("--dataset", metavar="NAME", help="The reverse: what came from this dataset.")
@click.option("--digest", metavar="DIGEST", help="With --dataset: only this digest of it.")
@json_option
@tracking_uri_option
@pass_state
def lineage(
    state: CliState,
    model_uri: str | None,
    dataset: str | None,
    digest: str | None,
    as_json: bool,
) -> None:
    """Where a model version came from and where it runs (models:/name/3, models:/name@alias),
    or with --dataset, which runs and versions came from a dataset."""
    if (model_uri is None) == (dataset is None):
        raise click.UsageError("Give MODEL_URI or --dataset, not both.")
    graph = registry(state).lineage(model_uri, dataset=dataset, digest=digest)
    if as_json:
        print_json(as_dict(graph))
        return
    make_console().print(lineage_tree(graph))


def lineage_tree(graph: LineageGraph) -> Tree:
    """The graph as a tree from its root, following edges in both directions once."""
    by_id = {n.node_id: n for n in graph.nodes}
    links: dict[str, list[tuple[str, str]]] = {}
    for edge in graph.edges:
        links.setdefault(edge.source, []).append((edge.relation, edge.target))
        links.setdefault(edge.target, []).append((edge.relation, edge.source))

    def label(node_id: str, relation: str = "") -> str:
        node = by_id.get(node_id)
        text = f"{node.kind}: {node.label}" if node else node_id
        return f"[dim]{relation}[/dim] {text}" if relation else text

    root = Tree(label(graph.root))
    seen = {graph.root}
    frontier = [(graph.root, root)]
    while frontier:
        node_id, branch = frontier.pop(0)
        for relation, other in links.get(node_id, []):
            if other in seen:
                continue
            seen.add(other)
            frontier.append((other, branch.add(label(other, relation))))
    return root
