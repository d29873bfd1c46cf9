"""The ``tre projects`` and ``tre checkers`` commands: the catalogue's workflow acts, from a terminal.

Each runs one act of ``datasets.workflow`` in one transaction (``datasets.commands.act``): the act
and its audit row commit together, and a refusal says why and changes nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from datasets import workflow
from datasets.commands import Actor, act
from datasets.models import ProjectStatus
from tre_core.terminal import console

projects_app = typer.Typer(help="Projects: applications, decisions, members and grants.", no_args_is_help=True)
checkers_app = typer.Typer(help="Accredited output checkers.", no_args_is_help=True)


@projects_app.command("create")
def projects_create(
    slug: str,
    actor: Annotated[str, typer.Option("--as", help="The applicant, who becomes principal investigator.")],
    title: Annotated[str, typer.Option()],
    lay_summary: Annotated[str, typer.Option(help="For the public register.")],
    purpose: Annotated[str, typer.Option()],
    public_interest: Annotated[str, typer.Option(help="Why this serves the public interest.")],
    datasets: Annotated[str, typer.Option(help="Datasets wanted, comma-separated.")],
    members: Annotated[str, typer.Option(help="Other members, comma-separated usernames.")] = "",
) -> None:
    """Record an application for a project (as the pages' form does); a steward then decides."""
    form = workflow.ApplicationForm(
        slug=slug, title=title, lay_summary=lay_summary, purpose=purpose, public_interest=public_interest,
        datasets=[d.strip() for d in datasets.split(",") if d.strip()],
        members=[m.strip() for m in members.split(",") if m.strip()])
    act(workflow.apply_for_project, actor, form)
    console.print(f"Application {slug} recorded; a data steward approves it with `tre projects approve {slug}`.")


@projects_app.command("approve")
def projects_approve(slug: str, actor: Actor,
                     reference: Annotated[str, typer.Option(help="The approval's reference (ethics committee decision).")],
                     starts_on: Annotated[dt.datetime, typer.Option("--from", formats=["%Y-%m-%d"])],
                     ends_on: Annotated[dt.datetime, typer.Option("--until", formats=["%Y-%m-%d"])]) -> None:
    """Approve an application: its datasets are granted for the period; members can start at once."""
    act(workflow.approve, actor, slug, approval_reference=reference, starts_on=starts_on.date(), ends_on=ends_on.date())
    console.print(f"Project {slug} approved and active.")


@projects_app.command("refuse")
def projects_refuse(slug: str, actor: Actor, reason: Annotated[str, typer.Option(help="Told to the applicant.")]) -> None:
    """Refuse an application, with the reason."""
    act(workflow.refuse, actor, slug, reason=reason)
    console.print(f"Application {slug} refused.")


def _status_command(status_name: str, doc: str):
    def command(slug: str, actor: Actor, reason: Annotated[str, typer.Option(help="Why, for the record.")]) -> None:
        act(workflow.set_status, actor, slug, ProjectStatus(status_name), reason=reason)
        console.print(f"Project {slug} is now {status_name}. Running workspaces that it no longer allows stop within a minute.")

    command.__doc__ = doc
    return command


projects_app.command("suspend")(_status_command("suspended", "Suspend a project: its workspaces stop and cannot start."))
projects_app.command("reactivate")(_status_command("active", "Lift a suspension."))
projects_app.command("close")(_status_command("closed", "Close a project for good."))


@projects_app.command("add-member")
def projects_add_member(slug: str, username: str, actor: Actor) -> None:
    """Add a person to a project."""
    act(workflow.add_member, actor, slug, username)
    console.print(f"{username} is now a member of {slug}.")


@projects_app.command("remove-member")
def projects_remove_member(slug: str, username: str, actor: Actor) -> None:
    """Remove a person from a project; their running workspace of it stops within a minute."""
    act(workflow.remove_member, actor, slug, username)
    console.print(f"{username} removed from {slug}.")


@projects_app.command("grant")
def projects_grant(slug: str, dataset: str, actor: Actor,
                   reference: Annotated[str, typer.Option(help="The approval this grant cites.")],
                   starts_on: Annotated[dt.datetime, typer.Option("--from", formats=["%Y-%m-%d"])],
                   ends_on: Annotated[dt.datetime, typer.Option("--until", formats=["%Y-%m-%d"])]) -> None:
    """Grant a project a dataset (its current version) between two dates."""
    act(workflow.add_grant, actor, slug, dataset, starts_on=starts_on.date(), ends_on=ends_on.date(),
        approval_reference=reference)
    console.print(f"{slug} may use {dataset} from {starts_on.date()} until {ends_on.date()}.")


@projects_app.command("revoke")
def projects_revoke(slug: str, dataset: str, actor: Actor) -> None:
    """End a project's grant of a dataset now; its workspaces lose the mount within a minute."""
    act(workflow.revoke_grant, actor, slug, dataset)
    console.print(f"{slug} may no longer use {dataset}.")


@checkers_app.command("add")
def checkers_add(username: str, actor: Actor,
                 until: Annotated[dt.datetime, typer.Option(formats=["%Y-%m-%d"], help="End of accreditation.")]) -> None:
    """Accredit an output checker until a date."""
    act(workflow.set_checker, actor, username, until.date())
    console.print(f"{username} is an output checker until {until.date()}.")


@checkers_app.command("remove")
def checkers_remove(username: str, actor: Actor) -> None:
    """Withdraw an output checker's accreditation."""
    act(workflow.set_checker, actor, username, None)
    console.print(f"{username} is no longer an output checker.")


from datasets.governance_commands import register as _register_retention  # noqa: E402

_register_retention(projects_app)  # tre projects set-retention | archive-expired | archive | restore
