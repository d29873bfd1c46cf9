"""``tre extracts list|build|status`` and ``tre optout add|import|count``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from datasets.commands import Actor, catalogue_url
from datasets.workflow import WorkflowError
from tre_core.db import session_scope
from tre_core.terminal import JSON_HELP, console, fail, print_table

extracts_app = typer.Typer(help="Per-project extracts of the granted datasets.", no_args_is_help=True)
optout_app = typer.Typer(help="The opt-out register: people who objected, by database pseudonym.",
                         no_args_is_help=True)


def _rows(extracts) -> list[list[str]]:
    def rate(e):
        return f"{e.linked}/{e.cohort_people} ({e.linkage_rate:.0%})" if e.linkage_rate is not None else ""

    return [[str(e.id), e.project_id, e.dataset_version_id, e.status.value, f"{e.progress}%",
             "" if e.people is None else str(e.people), rate(e), (e.root_hash or "")[:12],
             e.created_at.strftime("%Y-%m-%d %H:%M"), (e.error or "")[:80]] for e in extracts]


COLUMNS = ("id", "project", "dataset", "status", "progress", "people", "linkage", "root hash", "queued", "error")


@extracts_app.command("list")
def extracts_list(project: Annotated[str | None, typer.Option(help="Only this project's.")] = None,
                  as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False) -> None:
    """Every extract, newest first: its state, progress, people and linkage rate (counts only)."""
    from sqlalchemy import select

    from datasets.models import Extract
    from extracts import jobs

    with session_scope(catalogue_url()) as session:
        rows = jobs.for_project(session, project) if project else list(
            session.scalars(select(Extract).order_by(Extract.id.desc())))
        print_table(COLUMNS, _rows(rows), as_json=as_json)


@extracts_app.command("status")
def extracts_status(extract_id: int,
                    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False) -> None:
    """One extract's state and progress."""
    from datasets.models import Extract

    with session_scope(catalogue_url()) as session:
        extract = session.get(Extract, extract_id)
        if extract is None:
            fail(f"There is no extract {extract_id}; `tre extracts list` lists them.")
        print_table(COLUMNS, _rows([extract]), as_json=as_json)


@extracts_app.command("build")
def extracts_build(
    extract_id: Annotated[int | None, typer.Argument(help="One extract; none: queue what grants and opt-outs "
                                                          "need and build every pending extract.")] = None,
    take_over: Annotated[bool, typer.Option("--take-over", help="Finish a build whose run died (no heartbeat "
                                                                "for TRE_EXTRACT_STALE_SECONDS).")] = False,
) -> None:
    """Build extracts, outside the hub: resumable, atomic, audited."""
    from extracts import build

    catalogue_url()
    if extract_id is not None:
        from rich.progress import Progress

        try:
            with Progress(console=console, transient=True) as bar:
                task = bar.add_task(f"extract {extract_id}", total=100)
                build.run(extract_id, take_over=take_over, progress=lambda percent: bar.update(task, completed=percent))
        except build.BuildError as exc:
            fail(str(exc))
        console.print(f"Extract {extract_id} is ready.")
        return
    built, failed = build.build_pending(take_over=True)
    console.print(f"{len(built)} extract(s) built: {', '.join(map(str, built)) or 'none pending'}.")
    if failed:
        fail("; ".join(f"extract {i}: {why}" for i, why in failed.items()))


@optout_app.command("add")
def optout_add(person_key: Annotated[str, typer.Argument(help="The person's database pseudonym (never a name).")],
               actor: Actor,
               objected_on: Annotated[dt.datetime | None, typer.Option("--on", formats=["%Y-%m-%d"],
                                                                       help="Day of the objection; default today.")] = None
               ) -> None:
    """Record one person's objection: new extracts leave them out, existing ones are rebuilt."""
    from extracts import optouts

    try:
        key = optouts.checked_key(person_key)
        with session_scope(catalogue_url()) as session:
            added = optouts.add(session, actor, [(key, (objected_on or dt.datetime.now()).date())], "tre optout add")
            total = optouts.count(session)
    except (optouts.OptOutError, WorkflowError) as exc:
        fail(str(exc))
    console.print(f"{added} objection recorded ({total} on the register).")


@optout_app.command("import")
def optout_import(path: Annotated[Path, typer.Argument(help="One pseudonym a line, or CSV pseudonym,YYYY-MM-DD.")],
                  actor: Actor) -> None:
    """Record a file of objections, all or nothing."""
    from extracts import optouts

    try:
        rows = optouts.read_file(path, dt.date.today())
        with session_scope(catalogue_url()) as session:
            added = optouts.add(session, actor, rows, f"file {path.name}")
            total = optouts.count(session)
    except (optouts.OptOutError, WorkflowError) as exc:
        fail(str(exc))
    console.print(f"{added} new objections recorded from {len(rows)} lines ({total} on the register).")


@optout_app.command("count")
def optout_count() -> None:
    """How many people are on the opt-out register (never who)."""
    from extracts import optouts

    with session_scope(catalogue_url()) as session:
        console.print(f"{optouts.count(session)} people on the opt-out register.")
