"""`tre people ...` (accreditation, identity binding) and `tre projects archive-expired | archive |
restore | set-retention`: the steward's side of datasets/accreditation.py, identity.py and
retention.py. Registered on the `tre` app by ``register``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from tre_core.settings import TRESettings

people_app = typer.Typer(help="People of the catalogue: researcher accreditation, sign-in binding.",
                         no_args_is_help=True)
Actor = Annotated[str, typer.Option("--as", help="Your username in the catalogue (a data steward).")]
Day = Annotated[dt.datetime, typer.Option(formats=["%Y-%m-%d"])]


def _cli():
    """The shared helpers of the ``tre`` command (act, fail, console), imported when a command runs."""
    from types import SimpleNamespace

    from datasets.commands import act, catalogue_url
    from tre_core.terminal import console, fail

    return SimpleNamespace(_act=act, _fail=fail, console=console, _catalogue_url=catalogue_url)


def places(settings: TRESettings | None = None):
    from datasets.retention import Places

    settings = settings or TRESettings()
    return Places(workspaces_root=settings.workspaces_root, egress_root=settings.egress_root,
                  archive_root=settings.archive_dir or settings.home / "archives",
                  key_file=settings.archive_key_file or settings.secrets_dir / "archive.key")


@people_app.command("accredit")
def people_accredit(username: str, actor: Actor,
                    trained_on: Annotated[dt.datetime, typer.Option("--trained-on", formats=["%Y-%m-%d"],
                                                                    help="Day the training was completed.")],
                    until: Annotated[dt.datetime, typer.Option(formats=["%Y-%m-%d"],
                                                               help="Last day the accreditation counts.")]) -> None:
    """Record a researcher's safe-researcher training and until when it counts (audited)."""
    from datasets.accreditation import record_accreditation

    cli = _cli()
    cli._act(record_accreditation, actor, username, trained_on.date(), until.date())
    cli.console.print(f"{username} is accredited from {trained_on.date()} until {until.date()}.")


@people_app.command("unbind-identity")
def people_unbind(username: str, actor: Actor,
                  reason: Annotated[str, typer.Option(help="Why, for the record (e.g. the helpdesk ticket).")]) -> None:
    """Release a person's binding to their provider account; the next sign-in binds again."""
    from datasets.identity import unbind_subject

    cli = _cli()
    old = cli._act(unbind_subject, actor, username, reason)
    cli.console.print(f"{username} is no longer bound to {old or 'any account'}; their next sign-in binds them.")


def projects_set_retention(slug: str, days: int, actor: Actor) -> None:
    """Days a closed project's files are kept before they are archived and wiped."""
    from datasets.retention import set_retention

    cli = _cli()
    cli._act(set_retention, actor, slug, days)
    cli.console.print(f"Project {slug}'s files are kept {days} days after it closes.")


def _run(function, *args):
    """A lifecycle step on the catalogue; a refusal prints what to do (nothing was deleted)."""
    from datasets.retention import ArchiveError
    from datasets.sealed import SealError
    from datasets.workflow import WorkflowError

    cli = _cli()
    try:
        return function(cli._catalogue_url(), *args)
    except (ArchiveError, SealError, WorkflowError) as error:
        cli._fail(str(error))


def _steward(url: str, actor: str) -> None:
    from tre_core.db import session_scope
    from datasets.workflow import require_steward

    with session_scope(url) as session:
        require_steward(session, actor)


def projects_archive_expired(today: Annotated[dt.datetime | None, typer.Option(
        formats=["%Y-%m-%d"], help="Run as if on this day (default: today).")] = None) -> None:
    """Archive (sealed, with a manifest) then wipe the files of every project closed for longer than
    its retention period. Run daily (the Ansible roles install a systemd timer)."""
    from datasets.retention import archive_expired

    settings = TRESettings()
    day = today.date() if today else dt.date.today()
    done = _run(archive_expired, places(settings), day, settings.project_retention_days)
    for result in done:
        _cli().console.print(f"{result.project}: {result.files} files, {result.bytes:,} bytes archived in "
                             f"{result.folder} (sha256 {result.sha256}), then wiped.")
    if not done:
        _cli().console.print("No closed project is past its retention period.")


def projects_archive(slug: str, actor: Actor) -> None:
    """Archive then wipe one closed project's files now, before its retention period ends."""
    from datasets.retention import archive_project

    def act(url, slug):
        _steward(url, actor)
        return archive_project(url, places(), slug, actor)

    result = _run(act, slug)
    _cli().console.print(f"{slug}: {result.files} files archived in {result.folder}, then wiped.")


def projects_restore(slug: str, archive: Annotated[Path, typer.Argument(help="The archive's folder.")],
                     actor: Actor) -> None:
    """Put an archived project's files back (each checked against the archive's manifest)."""
    from datasets.retention import restore_project

    def act(url, slug):
        _steward(url, actor)
        return restore_project(url, places(), slug, archive, actor)

    manifest = _run(act, slug)
    _cli().console.print(f"{slug}: {len([m for m in manifest if 'sha256' in m])} files restored from {archive}.")


def register(projects_app: typer.Typer) -> None:
    """Add the retention commands to ``tre projects`` (``tre people`` is its own entry point)."""
    projects_app.command("set-retention")(projects_set_retention)
    projects_app.command("archive-expired")(projects_archive_expired)
    projects_app.command("archive")(projects_archive)
    projects_app.command("restore")(projects_restore)
