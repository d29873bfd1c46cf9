"""The catalogue's ``tre`` commands: the database, catalogue files, datasets and the audit log.

Registered under the ``tre.commands`` entry points (pyproject.toml); projects and checkers are in
``datasets.project_commands``. Every act goes through ``datasets.workflow`` in one transaction.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Optional

import typer
from sqlalchemy.exc import IntegrityError

from datasets import audit, audit_commands
from datasets import catalogue as cat
from datasets.audit import AuditAction
from datasets.schema import is_current, upgrade
from tre_core.db import session_scope
from tre_core.settings import DEMO_HOME, TRESettings
from tre_core.terminal import JSON_HELP, console, fail, host_user, print_table, shown_url

db_app = typer.Typer(help="The TRE database.", no_args_is_help=True)
catalogue_app = typer.Typer(help="Datasets, projects, people and grants.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
datasets_app = typer.Typer(help="Datasets of the catalogue.", no_args_is_help=True)

Actor = Annotated[str, typer.Option("--as", help="Your username in the catalogue (a data steward or admin).")]


def catalogue_url() -> str:
    """The TRE database's URL, once we know it is there and up to date."""
    settings = TRESettings()
    if not is_current(settings.catalogue_url):
        fail(f"The TRE database {shown_url(settings.catalogue_url)} is missing or older than this version of the TRE. "
             f"Set TRE_HOME to the folder that holds tre.sqlite (now {settings.home}; the demo of "
             f"`./setup.sh demo` keeps it in {DEMO_HOME}) or TRE_DATABASE_URL to the database, "
             f"then run `tre db upgrade` if it is older.")
    return settings.catalogue_url


def act(function, *args, **kwargs):
    """Run one workflow act in one transaction; a refusal prints what to do and changes nothing."""
    from datasets.workflow import WorkflowError

    try:
        with session_scope(catalogue_url()) as session:
            return function(session, *args, **kwargs)
    except WorkflowError as exc:
        fail(str(exc))
    except IntegrityError as exc:  # a rule the database holds (a grant recorded twice, say)
        fail(f"The catalogue refused this change, which conflicts with what it holds already "
             f"({exc.orig}). Look at the project with `tre catalogue projects`; nothing was changed.")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the TRE database to the newest schema."""
    settings = TRESettings()
    upgrade(settings.catalogue_url)
    console.print(f"Database at the newest schema: {shown_url(settings.catalogue_url)}")


@catalogue_app.command("load")
def catalogue_load(path: Annotated[Path, typer.Argument(help="A catalogue YAML file.")]) -> None:
    """Load people, datasets, projects and grants from a YAML file (all or nothing)."""
    from datasets.workflow import WorkflowError

    settings = TRESettings()
    upgrade(settings.catalogue_url)
    try:
        parsed = cat.read_catalogue_file(path)
        with session_scope(settings.catalogue_url) as session:
            counts = cat.load_catalogue(session, parsed, settings.data_root)
            audit.record(session, host_user(), AuditAction.CATALOGUE_LOAD, details={"file": str(path), **counts})
    except (cat.CatalogueFileError, WorkflowError) as exc:
        fail(str(exc))
    console.print(
        f"Loaded {counts['people']} people, {counts['datasets']} datasets, {counts['projects']} projects from {path}."
    )


@catalogue_app.command("projects")
def catalogue_projects(as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False) -> None:
    """List projects with their members and the datasets granted today."""
    from sqlalchemy import select

    from datasets.models import Project

    today = dt.date.today()
    rows = []
    with session_scope(catalogue_url()) as session:
        for project in session.scalars(select(Project).order_by(Project.slug)):
            rows.append([
                project.slug, project.status.value, str(project.ends_on or ""),
                ", ".join(sorted(m.username for m in project.memberships)),
                ", ".join(sorted(g.dataset_slug for g in project.grants if g.in_force(today))),
            ])
    print_table(["project", "status", "ends_on", "members", "datasets_in_force"], rows, as_json=as_json)


audit_commands.register(audit_app, catalogue_url, fail, console)  # verify, checkpoints, checkpoint, install


@audit_app.command("export")
def audit_export(
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
) -> None:
    """Write the audit log as JSON Lines, one event per line, with its hashes."""
    import sys

    with session_scope(catalogue_url()) as session:
        stream = output.open("w", encoding="utf-8") if output else sys.stdout
        try:
            for event in audit.events(session):
                stream.write(audit.as_json_line(event) + "\n")
        finally:
            if output:
                stream.close()


# add | list | show | scrub | retire: dataset versions and their manifests
from datasets import version_commands  # noqa: E402 - after the app it attaches to

version_commands.attach(datasets_app)
