"""The ``tre`` command: what admins and data stewards run on the TRE's host."""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from datasets import audit
from datasets import catalogue as cat
from datasets.audit import AuditAction
from datasets.db import is_current, session_scope, upgrade
from datasets.settings import TRESettings

app = typer.Typer(help="Trusted research environment: catalogue, demo and images.", no_args_is_help=True)
db_app = typer.Typer(help="The TRE database.", no_args_is_help=True)
catalogue_app = typer.Typer(help="Datasets, projects, people and grants.", no_args_is_help=True)
demo_app = typer.Typer(help="The demo installation (synthetic data, local accounts).", no_args_is_help=True)
images_app = typer.Typer(help="Analysis images.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
firewall_app = typer.Typer(help="Host firewall rules around the workspaces.", no_args_is_help=True)
datasets_app = typer.Typer(help="Datasets of the catalogue.", no_args_is_help=True)
projects_app = typer.Typer(help="Projects: applications, decisions, members and grants.", no_args_is_help=True)
checkers_app = typer.Typer(help="Accredited output checkers.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(catalogue_app, name="catalogue")
app.add_typer(demo_app, name="demo")
app.add_typer(images_app, name="images")
app.add_typer(audit_app, name="audit")
app.add_typer(firewall_app, name="firewall")
app.add_typer(datasets_app, name="datasets")
app.add_typer(projects_app, name="projects")
app.add_typer(checkers_app, name="checkers")

Actor = Annotated[str, typer.Option("--as", help="Your username in the catalogue (a data steward or admin).")]

console = Console(soft_wrap=True)


def _progress(status, prefix: str):
    """Show a long step's output: live in a terminal, one line per build step in a log (CI)."""

    def show(line: str) -> None:
        line = line.strip()
        if console.is_terminal:
            status.update(f"{prefix}: {line[:110]}")
        elif line.startswith(("Step ", "I: Retrieving", "I: Base system installed", "importing", "packing")):
            console.print(f"    {prefix}: {line}", highlight=False)

    return show
DEMO_CATALOGUE = Path(__file__).resolve().parent / "demo_catalogue.yaml"


def _fail(message: str) -> None:
    console.print(f"[red]Error:[/red] {message}")
    raise typer.Exit(1)


def _catalogue_url() -> str:
    """The TRE database's URL, once we know it is there and up to date."""
    settings = TRESettings()
    if not is_current(settings.catalogue_url):
        _fail(f"The TRE database {settings.catalogue_url} is missing or older than this version of the TRE. "
              f"Check TRE_HOME (now {settings.home}), then run `tre db upgrade`.")
    return settings.catalogue_url


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the TRE database to the newest schema."""
    settings = TRESettings()
    upgrade(settings.catalogue_url)
    console.print(f"Database at the newest schema: {settings.catalogue_url}")


@catalogue_app.command("load")
def catalogue_load(path: Annotated[Path, typer.Argument(help="A catalogue YAML file.")]) -> None:
    """Load people, datasets, projects and grants from a YAML file (all or nothing)."""
    settings = TRESettings()
    upgrade(settings.catalogue_url)
    try:
        parsed = cat.read_catalogue_file(path)
        with session_scope(settings.catalogue_url) as session:
            counts = cat.load_catalogue(session, parsed, settings.data_root)
            audit.record(session, os.environ.get("SUDO_USER") or getpass.getuser(), AuditAction.CATALOGUE_LOAD,
                         details={"file": str(path), **counts})
    except cat.CatalogueFileError as exc:
        _fail(str(exc))
    console.print(
        f"Loaded {counts['people']} people, {counts['datasets']} datasets, {counts['projects']} projects from {path}."
    )


@catalogue_app.command("projects")
def catalogue_projects() -> None:
    """List projects with their members and the datasets granted today."""
    settings = TRESettings()
    from sqlalchemy import select

    from datasets.models import Project

    today = dt.date.today()
    table = Table("project", "status", "ends on", "members", "datasets in force")
    with session_scope(_catalogue_url()) as session:
        for project in session.scalars(select(Project).order_by(Project.slug)):
            table.add_row(
                project.slug, project.status.value, str(project.ends_on or ""),
                ", ".join(sorted(m.username for m in project.memberships)),
                ", ".join(sorted(g.dataset_slug for g in project.grants if g.in_force(today))),
            )
    console.print(table)


@demo_app.command("data")
def demo_data(scale: Annotated[float, typer.Option(help="1.0 gives tens of thousands of rows.")] = 1.0) -> None:
    """Generate the synthetic demo datasets (deterministic; reused when already there)."""
    from datasets.demo_data import generate_demo_datasets

    settings = TRESettings()
    with console.status("Generating synthetic datasets (claims, hospital stays, lab results)…"):
        generated = generate_demo_datasets(settings.data_root, scale=scale)
    for dataset in generated.values():
        console.print(f"  {dataset.slug}: {dataset.row_count:,} rows in {dataset.directory}")


@demo_app.command("init")
def demo_init(scale: Annotated[float, typer.Option(help="Size of the synthetic data.")] = 1.0) -> None:
    """Database, synthetic data, demo catalogue and demo password: everything the demo hub needs."""
    from datasets.demo_login import demo_password

    settings = TRESettings()
    db_upgrade()
    demo_data(scale=scale)
    catalogue_load(DEMO_CATALOGUE)
    demo_password(settings.secrets_dir)


@demo_app.command("password")
def demo_password_command() -> None:
    """Print the demo accounts' password."""
    from datasets.demo_login import demo_password

    print(demo_password(TRESettings().secrets_dir))


@images_app.command("build")
def images_build(
    names: Annotated[Optional[list[str]], typer.Argument(help="Images under images/ (default: singleuser).")] = None,
    ca_bundle: Annotated[
        Optional[Path],
        typer.Option(envvar="TRE_EXTRA_CA_BUNDLE",
                     help="Extra CA certificates for the build's downloads (a TLS proxy's CA)."),
    ] = None,
) -> None:
    """Build analysis images (and the Debian base image when it is missing)."""
    import docker

    from images.build import ImageBuildError, build_image, ensure_base_image

    if ca_bundle is None and Path("/etc/ssl/certs/ca-certificates.crt").exists():
        ca_bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if ca_bundle is not None and not ca_bundle.is_file():
        _fail(f"CA bundle {ca_bundle} does not exist; give the path of a PEM file with --ca-bundle.")
    client = docker.from_env(timeout=600)
    with console.status("Base image debian:bookworm-slim…") as status:
        ensure_base_image(client, progress=_progress(status, "base image"))
    for name in names or ["singleuser"]:
        with console.status(f"Building {name}…") as status:
            try:
                image_id = build_image(
                    client, name, ca_bundle=ca_bundle,
                    progress=_progress(status, name),
                )
            except ImageBuildError as exc:
                _fail(str(exc))
        console.print(f"  {name}: {image_id}")


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the whole chain; exit 1 naming the first changed, deleted or inserted row."""
    with session_scope(_catalogue_url()) as session:
        result = audit.verify(session)
    if not result.ok:
        _fail(f"audit log broken at row {result.first_bad_seq}: {result.problem}. "
              "Keep the database as it is and alert the security officer.")
    console.print(f"Audit log intact: {result.rows} rows.")


@audit_app.command("export")
def audit_export(
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
) -> None:
    """Write the audit log as JSON Lines, one event per line, with its hashes."""
    import sys

    with session_scope(_catalogue_url()) as session:
        stream = output.open("w", encoding="utf-8") if output else sys.stdout
        try:
            for event in audit.events(session):
                stream.write(audit.as_json_line(event) + "\n")
        finally:
            if output:
                stream.close()


@firewall_app.command("install")
def firewall_install() -> None:
    """Let workspaces reach the hub's API port on the host and nothing else (idempotent)."""
    from spawner import firewall

    settings = TRESettings()
    try:
        firewall.install(settings.instance, settings.hub_port)
    except RuntimeError as exc:
        _fail(f"{exc}. The rules need root.")
    console.print(f"Firewall rules of instance {settings.instance}: workspaces reach port {settings.hub_port} only.")


@firewall_app.command("remove")
def firewall_remove() -> None:
    """Remove this installation's firewall rules (idempotent)."""
    from spawner import firewall

    settings = TRESettings()
    firewall.remove(settings.instance)
    console.print(f"Firewall rules of instance {settings.instance} removed.")


@firewall_app.command("show")
def firewall_show() -> None:
    """Print this installation's rules as iptables lists them."""
    from spawner import firewall

    for line in firewall.installed_rules(TRESettings().instance) or ["(no rules installed)"]:
        print(line)


def _act(function, *args, **kwargs):
    """Run one workflow act in one transaction; a refusal prints what to do and changes nothing."""
    from datasets.workflow import WorkflowError

    try:
        with session_scope(_catalogue_url()) as session:
            return function(session, *args, **kwargs)
    except WorkflowError as exc:
        _fail(str(exc))


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
    from datasets import workflow

    form = workflow.ApplicationForm(
        slug=slug, title=title, lay_summary=lay_summary, purpose=purpose, public_interest=public_interest,
        datasets=[d.strip() for d in datasets.split(",") if d.strip()],
        members=[m.strip() for m in members.split(",") if m.strip()])
    _act(workflow.apply_for_project, actor, form)
    console.print(f"Application {slug} recorded; a data steward approves it with `tre projects approve {slug}`.")


@projects_app.command("approve")
def projects_approve(slug: str, actor: Actor,
                     reference: Annotated[str, typer.Option(help="The approval's reference (ethics committee decision).")],
                     starts_on: Annotated[dt.datetime, typer.Option("--from", formats=["%Y-%m-%d"])],
                     ends_on: Annotated[dt.datetime, typer.Option("--until", formats=["%Y-%m-%d"])]) -> None:
    """Approve an application: its datasets are granted for the period; members can start at once."""
    from datasets import workflow

    _act(workflow.approve, actor, slug, approval_reference=reference, starts_on=starts_on.date(), ends_on=ends_on.date())
    console.print(f"Project {slug} approved and active.")


@projects_app.command("refuse")
def projects_refuse(slug: str, actor: Actor, reason: Annotated[str, typer.Option(help="Told to the applicant.")]) -> None:
    """Refuse an application, with the reason."""
    from datasets import workflow

    _act(workflow.refuse, actor, slug, reason=reason)
    console.print(f"Application {slug} refused.")


def _status_command(status_name: str, doc: str):
    def command(slug: str, actor: Actor, reason: Annotated[str, typer.Option(help="Why, for the record.")]) -> None:
        from datasets import workflow
        from datasets.models import ProjectStatus

        _act(workflow.set_status, actor, slug, ProjectStatus(status_name), reason=reason)
        console.print(f"Project {slug} is now {status_name}. Running workspaces that it no longer allows stop within a minute.")

    command.__doc__ = doc
    return command


projects_app.command("suspend")(_status_command("suspended", "Suspend a project: its workspaces stop and cannot start."))
projects_app.command("reactivate")(_status_command("active", "Lift a suspension."))
projects_app.command("close")(_status_command("closed", "Close a project for good."))


@projects_app.command("add-member")
def projects_add_member(slug: str, username: str, actor: Actor) -> None:
    """Add a person to a project."""
    from datasets import workflow

    _act(workflow.add_member, actor, slug, username)
    console.print(f"{username} is now a member of {slug}.")


@projects_app.command("remove-member")
def projects_remove_member(slug: str, username: str, actor: Actor) -> None:
    """Remove a person from a project; their running workspace of it stops within a minute."""
    from datasets import workflow

    _act(workflow.remove_member, actor, slug, username)
    console.print(f"{username} removed from {slug}.")


@projects_app.command("grant")
def projects_grant(slug: str, dataset: str, actor: Actor,
                   reference: Annotated[str, typer.Option(help="The approval this grant cites.")],
                   starts_on: Annotated[dt.datetime, typer.Option("--from", formats=["%Y-%m-%d"])],
                   ends_on: Annotated[dt.datetime, typer.Option("--until", formats=["%Y-%m-%d"])]) -> None:
    """Grant a project a dataset (its current version) between two dates."""
    from datasets import workflow

    _act(workflow.add_grant, actor, slug, dataset, starts_on=starts_on.date(), ends_on=ends_on.date(),
         approval_reference=reference)
    console.print(f"{slug} may use {dataset} from {starts_on.date()} until {ends_on.date()}.")


@projects_app.command("revoke")
def projects_revoke(slug: str, dataset: str, actor: Actor) -> None:
    """End a project's grant of a dataset now; its workspaces lose the mount within a minute."""
    from datasets import workflow

    _act(workflow.revoke_grant, actor, slug, dataset)
    console.print(f"{slug} may no longer use {dataset}.")


@checkers_app.command("add")
def checkers_add(username: str, actor: Actor,
                 until: Annotated[dt.datetime, typer.Option(formats=["%Y-%m-%d"], help="End of accreditation.")]) -> None:
    """Accredit an output checker until a date."""
    from datasets import workflow

    _act(workflow.set_checker, actor, username, until.date())
    console.print(f"{username} is an output checker until {until.date()}.")


@checkers_app.command("remove")
def checkers_remove(username: str, actor: Actor) -> None:
    """Withdraw an output checker's accreditation."""
    from datasets import workflow

    _act(workflow.set_checker, actor, username, None)
    console.print(f"{username} is no longer an output checker.")


@datasets_app.command("add")
def datasets_add(
    slug: str, actor: Actor,
    path: Annotated[str, typer.Option(help="Its folder, relative to the data root.")],
    title: Annotated[str, typer.Option()],
    controller: Annotated[str, typer.Option(help="The data controller.")],
    version: Annotated[str, typer.Option()],
    sensitivity: Annotated[str, typer.Option()] = "pseudonymised",
    description: Annotated[str, typer.Option()] = "",
    licence: Annotated[str, typer.Option(help="Licence or conditions of use.")] = "",
) -> None:
    """Register a dataset (or its new version): sha256 of every file, row count from Parquet."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    from datasets import workflow
    from datasets.catalogue import DatasetEntry
    from datasets.models import Dataset

    settings = TRESettings()
    try:
        entry = DatasetEntry(slug=slug, title=title, data_controller=controller, sensitivity=sensitivity,
                             version=version, storage_path=path, description=description, licence=licence)
    except ValidationError as exc:
        _fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
    folder = settings.data_root / entry.storage_path
    if not folder.is_dir() or not folder.resolve().is_relative_to(settings.data_root.resolve()):
        _fail(f"{folder} is not a folder inside the data root {settings.data_root}; put the dataset there first.")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    hashes = {}
    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TimeRemainingColumn(), console=console) as progress:
        task = progress.add_task(f"sha256 of {slug}", total=sum(p.stat().st_size for p in files))
        for path_ in files:
            digest = hashlib.sha256()
            with path_.open("rb") as stream:
                for block in iter(lambda: stream.read(1 << 22), b""):
                    digest.update(block)
                    progress.advance(task, len(block))
            hashes[path_.name] = digest.hexdigest()
    import pyarrow.parquet as pq

    rows = sum(pq.read_metadata(p).num_rows for p in files if p.suffix == ".parquet") or None
    dataset = Dataset(slug=slug, title=title, description=description, data_controller=controller,
                      sensitivity=sensitivity, version=version, storage_path=entry.storage_path, licence=licence,
                      columns=[], file_hashes=hashes, row_count=rows)
    _act(workflow.register_dataset, actor, dataset)
    console.print(f"Registered {slug} {version}: {len(hashes)} files" + (f", {rows:,} rows." if rows else "."))


@datasets_app.command("list")
def datasets_list() -> None:
    """The catalogue's datasets."""
    from sqlalchemy import select

    from datasets.models import Dataset

    table = Table("dataset", "version", "title", "rows", "files", "sensitivity")
    with session_scope(_catalogue_url()) as session:
        for d in session.scalars(select(Dataset).order_by(Dataset.slug)):
            table.add_row(d.slug, d.version, d.title, f"{d.row_count:,}" if d.row_count else "", str(len(d.file_hashes)), d.sensitivity)
    console.print(table)


@datasets_app.command("show")
def datasets_show(slug: str) -> None:
    """A dataset's metadata and schema (never its data)."""
    from datasets.models import Dataset

    with session_scope(_catalogue_url()) as session:
        dataset = session.get(Dataset, slug)
        if dataset is None:
            _fail(f"There is no dataset {slug}; `tre datasets list` lists them.")
        console.print(f"[bold]{dataset.title}[/bold] ({dataset.slug} {dataset.version}), {dataset.data_controller}")
        console.print(dataset.description)
        table = Table("column", "type", "identifier", "description")
        for column in dataset.columns:
            table.add_row(column["name"], column["type"], column.get("identifier") or "", column.get("description", ""))
        console.print(table)
        for name, digest in dataset.file_hashes.items():
            console.print(f"  {name}  sha256 {digest}")
