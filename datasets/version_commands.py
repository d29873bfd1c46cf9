"""``tre datasets add | list | show | scrub | retire``: dataset versions on the host's command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from tre_core.terminal import JSON_HELP, console, print_table
from tre_core.terminal import fail as _fail

Actor = Annotated[str, typer.Option("--as", help="Your username in the catalogue (a data steward or admin).")]


def byte_progress(description: str, in_bytes: bool = True):
    """A rich progress bar (in bytes, or a plain count); returns (context manager, callback(total, advanced))."""
    counts = (DownloadColumn(), TransferSpeedColumn()) if in_bytes else (MofNCompleteColumn(),)
    progress = Progress("[progress.description]{task.description}", BarColumn(), *counts, TimeRemainingColumn(),
                        console=console)
    task = progress.add_task(description, total=None)

    def advance(total: int, n: int) -> None:
        progress.update(task, total=total, advance=n)
    return progress, advance


def add(
    slug: str, actor: Actor,
    path: Annotated[str, typer.Option(help="Its folder, relative to the data root.")],
    title: Annotated[str, typer.Option()],
    controller: Annotated[str, typer.Option(help="The data controller.")],
    version: Annotated[str, typer.Option()],
    sensitivity: Annotated[str, typer.Option()] = "pseudonymised",
    description: Annotated[str, typer.Option()] = "",
    licence: Annotated[str, typer.Option(help="Licence or conditions of use.")] = "",
    tag: Annotated[Optional[list[str]], typer.Option(
        help="COLUMN=direct|indirect|none: a column's identifier tag (repeat it). Other columns keep the "
             "previous version's tag, or the Parquet field's tre.identifier metadata.")] = None,
) -> None:
    """Register a dataset version: the manifest of its whole tree (sha256 of every file, root hash),
    tables, row counts and columns from Parquet footers; its files become read-only."""
    from pydantic import ValidationError

    from datasets import workflow
    from datasets.catalogue import DatasetEntry
    from datasets.column_tags import untagged_warning
    from datasets.commands import act as _act
    from datasets.manifest import ManifestError
    from datasets.models import Dataset
    from datasets.versions import manifest_of
    from tre_core.settings import TRESettings

    settings = TRESettings()
    try:
        entry = DatasetEntry(slug=slug, title=title, data_controller=controller, sensitivity=sensitivity,
                             version=version, storage_path=path, description=description, licence=licence)
    except ValidationError as exc:
        _fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
    progress, advance = byte_progress(f"sha256 of {slug} {version}")
    try:
        with progress:
            manifest = manifest_of(settings.data_root, entry.storage_path, advance, describe=(slug, version))
    except ManifestError as exc:
        _fail(str(exc))
    found = _version_columns(slug, settings.data_root / entry.storage_path, manifest, tag or [])
    dataset = Dataset(slug=slug, title=title, description=description, data_controller=controller,
                      sensitivity=sensitivity, version=version, storage_path=entry.storage_path, licence=licence,
                      columns=found.columns)
    _act(workflow.register_dataset, actor, dataset, manifest, settings.data_root)
    console.print(f"Registered {slug} {version}: {len(manifest.files)} files, {manifest.byte_count:,} bytes, "
                  f"{manifest.row_count:,} rows in {len(manifest.tables)} tables; root hash {manifest.root_hash}.")
    if found.untagged_new:
        console.print(f"[yellow]{untagged_warning(slug, version, found.untagged_new)}[/yellow]")


def _version_columns(slug: str, folder: Path, manifest, tags: list[str]):
    """The new version's columns, the previous version's tags carried forward (datasets/column_tags.py);
    one Parquet file per table is read (the manifest holds a table's partitions to one schema)."""
    from datasets.column_tags import ColumnTagError, columns_for_version, parse_tags
    from datasets.commands import catalogue_url
    from datasets.models import Dataset
    from tre_core.db import session_scope

    first: dict[str, Path] = {}
    for entry in manifest.files:
        if entry.path.endswith(".parquet"):
            first.setdefault(entry.path.split("/")[0] if "/" in entry.path else ".", folder / entry.path)
    with session_scope(catalogue_url()) as session:
        previous = session.get(Dataset, slug)
        before = list(previous.columns) if previous else None
    try:
        return columns_for_version(first.values(), before, parse_tags(tags))
    except ColumnTagError as error:
        _fail(str(error))


def list_versions(as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False) -> None:
    """The catalogue's datasets, one line per version."""
    from sqlalchemy import select

    from datasets.commands import catalogue_url
    from datasets.models import DatasetVersion
    from tre_core.db import session_scope

    with session_scope(catalogue_url()) as session:
        rows = [[v.dataset_slug, v.version, v.status.value, str(v.row_count), str(len(v.files)), str(v.byte_count),
                 v.root_hash[:16]]
                for v in session.scalars(select(DatasetVersion).order_by(DatasetVersion.dataset_slug,
                                                                         DatasetVersion.version))]
    print_table(["dataset", "version", "status", "rows", "files", "bytes", "root hash"], rows, as_json=as_json)


def show(slug: str) -> None:
    """A dataset's metadata, versions, tables and schemas (never its data)."""
    import datetime as dt

    from datasets.commands import catalogue_url
    from datasets.models import Dataset
    from datasets.versions import projects_granted
    from tre_core.db import session_scope

    with session_scope(catalogue_url()) as session:
        dataset = session.get(Dataset, slug)
        if dataset is None:
            _fail(f"There is no dataset {slug}; `tre datasets list` lists them.")
        console.print(f"[bold]{dataset.title}[/bold] ({dataset.slug}, newest {dataset.version}), {dataset.data_controller}")
        console.print(dataset.description)
        for v in dataset.versions:
            granted = ", ".join(projects_granted(session, slug, v.version, dt.date.today())) or "none"
            console.print(f"\n[bold]{v.version}[/bold] {v.status.value}: {v.row_count:,} rows, {len(v.files)} files, "
                          f"{v.byte_count:,} bytes, root hash {v.root_hash}; granted to {granted}")
            for name, info in sorted(v.tables.items()):
                table = Table(f"{slug if name == '.' else name}: {info['rows']:,} rows, "
                              f"{len(info['partitions'])} partitions", "type")
                for column, kind in info["schema"]:
                    table.add_row(column, kind)
                console.print(table)


def scrub(
    dataset: Annotated[str | None, typer.Argument(help="Only this dataset (default: every active version).")] = None,
    rate: Annotated[float, typer.Option(help="Most MB/s to read (0: as fast as the disk goes).")] = 0.0,
) -> None:
    """Re-hash dataset versions against their manifests; suspend any that changed."""
    from datasets.scrub import scrub_versions
    from tre_core.settings import TRESettings

    settings = TRESettings()
    progress, advance = byte_progress("scrubbing")
    with progress:
        results = scrub_versions(settings, only=dataset, rate_mb_s=rate, progress=advance)
    for result in results:
        colour = "green" if result.ok else "red"
        console.print(f"[{colour}]{result.slug} {result.version}: {result.summary}[/{colour}]")
    if any(not r.ok for r in results):
        raise typer.Exit(2)


def retire(slug: str, version: str, actor: Actor) -> None:
    """Retire a dataset version: grants naming it mount nothing from now on."""
    from datasets import versions, workflow
    from datasets.commands import act as _act

    def act(session, actor_):
        workflow.require_steward(session, actor_)
        try:
            return versions.retire(session, actor_, slug, version)
        except versions.VersionError as exc:
            raise workflow.WorkflowError(str(exc)) from None
    _act(act, actor)
    console.print(f"{slug} {version} is retired; running workspaces that mount it stop within a minute.")


def attach(datasets_app: typer.Typer) -> None:
    datasets_app.command("add")(add)
    datasets_app.command("list")(list_versions)
    datasets_app.command("show")(show)
    datasets_app.command("scrub")(scrub)
    datasets_app.command("retire")(retire)
