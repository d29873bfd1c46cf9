"""The ``tre`` command: what admins and data stewards run on the TRE's host."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from datasets import catalogue as cat
from datasets.db import session_scope, upgrade
from datasets.settings import TRESettings

app = typer.Typer(help="Trusted research environment: catalogue, demo and images.", no_args_is_help=True)
db_app = typer.Typer(help="The TRE database.", no_args_is_help=True)
catalogue_app = typer.Typer(help="Datasets, projects, people and grants.", no_args_is_help=True)
demo_app = typer.Typer(help="The demo installation (synthetic data, local accounts).", no_args_is_help=True)
images_app = typer.Typer(help="Analysis images.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
firewall_app = typer.Typer(help="Host firewall rules around the workspaces.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(catalogue_app, name="catalogue")
app.add_typer(demo_app, name="demo")
app.add_typer(images_app, name="images")
app.add_typer(audit_app, name="audit")
app.add_typer(firewall_app, name="firewall")

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
    with session_scope(settings.catalogue_url) as session:
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
    from datasets import audit

    with session_scope(TRESettings().catalogue_url) as session:
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

    from datasets import audit

    with session_scope(TRESettings().catalogue_url) as session:
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
