"""``tre packages ...``: the admin's side of the package index, on the host (entry point
``tre.commands``). Researchers ask from a workspace (``tre packages request`` there talks to the
index service) or from the catalogue's Packages page."""

from __future__ import annotations

import getpass
import os
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="The in-enclave package index: policies, requests, approvals, what it serves.",
                  no_args_is_help=True)
console = Console()
AsAdmin = Annotated[Optional[str], typer.Option(
    "--as", help="Your username in the catalogue (an admin); default: your login on this host.")]


def _context():
    """(settings, sessions, store), once the TRE database is there and current."""
    from datasets.commands import catalogue_url as _catalogue_url
    from tre_core.db import session_scope
    from package_index.settings import PackageIndexSettings
    from package_index.store import IndexStore

    url = _catalogue_url()
    settings = PackageIndexSettings()
    return settings, (lambda: session_scope(url)), IndexStore(settings.package_root)


def _actor(actor: str | None) -> str:
    return actor or os.environ.get("SUDO_USER") or getpass.getuser()


def _run(act):
    from datasets.workflow import WorkflowError
    from package_index.fetch import FetchError
    from package_index.policy import BadRequest

    try:
        return act()
    except (WorkflowError, FetchError, BadRequest) as error:
        console.print(f"[red]Error:[/red] {error}", highlight=False)
        raise typer.Exit(1) from None


@app.command("policy")
def policy(
    scope: Annotated[str, typer.Argument(help="A project's slug, or '*' for the installation's default.")],
    value: Annotated[str, typer.Argument(help="none, pre-approved or any-approved-on-request.")],
    actor: AsAdmin = None,
) -> None:
    """Set what a project's workspaces (or all without a policy of their own) may install."""
    from package_index import workflow
    from package_index.models import Policy

    try:
        chosen = Policy(value)
    except ValueError:
        console.print(f"[red]Error:[/red] {value!r} is not a policy: none, pre-approved or any-approved-on-request.")
        raise typer.Exit(1) from None
    _, sessions, _ = _context()

    def act():
        with sessions() as session:
            workflow.set_policy(session, _actor(actor), scope, chosen)
    _run(act)
    console.print(f"package policy of {scope}: {chosen.value}")


@app.command("list")
def served() -> None:
    """What the index serves now: each file, its sha256, and why it is there."""
    from package_index import workflow

    _, sessions, _ = _context()
    table = Table("package", "version", "file", "sha256", "bytes", "from")
    with sessions() as session:
        for d in workflow.served(session):
            table.add_row(d.name, d.version, d.filename, d.sha256[:16] + "…", str(d.size),
                          d.source.value + (f" #{d.request_id}" if d.request_id else ""))
    console.print(table)


@app.command("requests")
def requests(project: Annotated[Optional[str], typer.Option(help="One project's only.")] = None) -> None:
    """Package requests, newest first, with their state."""
    from package_index import workflow

    _, sessions, _ = _context()
    table = Table("#", "project", "by", "package", "state", "reason / outcome")
    with sessions() as session:
        for r in workflow.requests_of(session, project):
            table.add_row(str(r.id), r.project, r.requested_by, f"{r.name}{r.specifier}", r.state.value,
                          r.outcome or r.reason)
    console.print(table)


@app.command("show")
def show(request_id: int, actor: AsAdmin = None) -> None:
    """What approving a request would bring: the closure for the images' Python, sizes, licences."""
    from package_index import workflow
    from package_index.fetch import PLATFORM_TEXT

    settings, sessions, _ = _context()
    closure = _run(lambda: workflow.review(sessions, _actor(actor), request_id, settings.package_upstream_url,
                                           settings.ca_bundle))
    table = Table("package", "version", "file (wheel for the platform)", "licence")
    for item in closure:
        table.add_row(item["name"], item["version"], item["filename"], item["licence"])
    console.print(f"Request #{request_id} would bring, for {PLATFORM_TEXT}:")
    console.print(table)


@app.command("approve")
def approve(request_id: int, reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")] = "",
            actor: AsAdmin = None) -> None:
    """Approve: fetch the closure on the host, check every sha256, publish it all or nothing."""
    from package_index import workflow

    settings, sessions, store = _context()
    request = _run(lambda: workflow.approve(sessions, store, _actor(actor), request_id,
                                            settings.package_upstream_url, settings.ca_bundle, reason))
    console.print(request.outcome, highlight=False)


@app.command("refuse")
def refuse(request_id: int, reason: Annotated[str, typer.Option(help="Why; the researcher reads it.")],
           actor: AsAdmin = None) -> None:
    """Refuse a request, with the reason the researcher will read."""
    from package_index import workflow

    _, sessions, _ = _context()

    def act():
        with sessions() as session:
            return workflow.refuse(session, _actor(actor), request_id, reason).outcome
    console.print(_run(act), highlight=False)


@app.command("remove")
def remove(name: str, reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")],
           actor: AsAdmin = None) -> None:
    """Stop new installs of a package (every version it serves); installed copies stay."""
    from package_index import workflow

    _, sessions, store = _context()

    def act():
        with sessions() as session:
            return workflow.remove(session, store, _actor(actor), name, reason)
    for filename in _run(act):
        console.print(f"removed {filename}")


@app.command("allowlist")
def allowlist(names: Annotated[Optional[list[str]], typer.Argument(
        help="Packages to pre-approve, with their dependencies (default: the TRE's allowlist).")] = None,
        actor: AsAdmin = None) -> None:
    """Publish the pre-approved allowlist (default: pip, lifelines, scikit-survival, pyreadstat, tableone...)."""
    from package_index import workflow

    settings, sessions, store = _context()
    rows = _run(lambda: workflow.publish_allowlist(sessions, store, _actor(actor), list(names or workflow.DEFAULT_ALLOWLIST),
                                                   settings.package_upstream_url, settings.ca_bundle))
    console.print(f"published {len(rows)} new files into the allowlist")
