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
from sqlalchemy.exc import IntegrityError
from rich.console import Console
from rich.table import Table

from datasets import audit
from datasets import catalogue as cat
from datasets.audit import AuditAction
from datasets.db import is_current, session_scope, upgrade
from datasets.settings import TRESettings

app = typer.Typer(help="Trusted research environment: catalogue, demo and images.", no_args_is_help=True)


@app.callback()
def _every_command() -> None:
    # --as names the person acted for; the audit log also keeps which host account ran the command
    audit.set_process_context(via="tre", host_user=_host_user())
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
        _fail(f"The TRE database {_shown_url(settings.catalogue_url)} is missing or older than this version of the TRE. "
              f"Check TRE_HOME (now {settings.home}), then run `tre db upgrade`.")
    return settings.catalogue_url


def _shown_url(url: str) -> str:
    """A database URL fit for a terminal or a log: a PostgreSQL password never shows."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the TRE database to the newest schema."""
    settings = TRESettings()
    upgrade(settings.catalogue_url)
    console.print(f"Database at the newest schema: {_shown_url(settings.catalogue_url)}")


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

    from sqlalchemy import select

    from datasets.models import Project

    settings = TRESettings()
    db_upgrade()
    demo_data(scale=scale)
    with session_scope(_catalogue_url()) as session:
        loaded = session.scalars(select(Project.slug).limit(1)).first() is not None
    if loaded:
        # Loading again would put back what stewards have since changed (a revoked grant, a
        # suspended project, a removed member): the demo keeps its history.
        console.print("The demo catalogue is loaded already; what stewards changed since is kept "
                      "(./setup.sh reset starts the demo again from scratch).")
    else:
        catalogue_load(DEMO_CATALOGUE)
    demo_password(settings.secrets_dir)


@demo_app.command("password")
def demo_password_command() -> None:
    """Print the demo accounts' password."""
    from datasets.demo_login import demo_password

    print(demo_password(TRESettings().secrets_dir))


def _host_user() -> str:
    """Who runs this command on the host (through sudo: the person, not root)."""
    return os.environ.get("SUDO_USER") or getpass.getuser()


def _docker():
    import docker

    try:
        client = docker.from_env(timeout=900)
        client.ping()
    except Exception as exc:  # no engine: say so, not a traceback
        _fail(f"The Docker engine does not answer ({exc}); start it (./setup.sh starts one) and try again.")
    return client


def _engine_has(client, digest: str) -> bool:
    """Whether the engine holds an image whose id is exactly ``digest`` (not merely a tag)."""
    from docker.errors import ImageNotFound

    try:
        return client.images.get(digest).id == digest
    except ImageNotFound:
        return False


def _build_args(client, name: str) -> dict[str, str]:
    """The ARGs an image is built with: ``BASE``, for images built FROM singleuser, is the id of
    the singleuser image of this engine now, so that the registry records exactly what it came from."""
    from docker.errors import ImageNotFound

    from images.build import dockerfile_path

    if "ARG BASE" not in dockerfile_path(name).read_text():
        return {}
    try:
        return {"BASE": client.images.get("tre/singleuser:latest").id}
    except ImageNotFound:
        _fail(f"The {name} image is built FROM singleuser, which is not built yet; run `tre images build singleuser` first.")


def _inventory(client, name: str, digest: str) -> dict:
    from images.sbom import InventoryError, read_inventory

    try:
        return read_inventory(client, digest, name, labels={"tre.instance": TRESettings().instance})
    except InventoryError as exc:
        _fail(f"{exc}. Nothing was registered.")


def _register(client, name: str, digest: str, build_args: dict[str, str], actor: Optional[str]) -> None:
    """Register a built image in the catalogue (its SBOM read from a throwaway container)."""
    from datasets import images as registry
    from images.build import dockerfile_path

    with console.status(f"Listing the packages of {name}…"):
        sbom = _inventory(client, name, digest)
    registration = _act(registry.register, actor or _host_user(), name=name, digest=digest,
                        dockerfile=dockerfile_path(name).read_text(), build_args=build_args, sbom=sbom,
                        by_host_user=actor is None)
    image = registration.image
    if registration.created:
        console.print(f"  registered {image.reference} ({digest}), {len(sbom['components'])} packages")
    else:
        console.print(f"  {name}: this build ({digest}) is registered already as {image.reference}; nothing changed")


AsAdmin = Annotated[Optional[str], typer.Option(
    "--as", help="Your username in the catalogue (an admin); default: your login on this host.")]


@images_app.command("build")
def images_build(
    names: Annotated[Optional[list[str]], typer.Argument(
        help="Images under images/: singleuser, r, projects/<name> (default: singleuser).")] = None,
    actor: AsAdmin = None,
    register: Annotated[bool, typer.Option(
        help="Register each build in the catalogue (--no-register: build only, e.g. before the catalogue exists).")] = True,
    ca_bundle: Annotated[
        Optional[Path],
        typer.Option(envvar="TRE_EXTRA_CA_BUNDLE",
                     help="Extra CA certificates for the build's downloads (a TLS proxy's CA)."),
    ] = None,
) -> None:
    """Build analysis images (and the Debian base image when it is missing), then register them.

    A failed build registers nothing: it names the failed step and keeps the whole log under
    TRE_HOME/logs/ (with --no-register: TRE_BUILD_LOG_DIR, default /tmp)."""
    from images.build import ImageBuildError, build_image, dockerfile_path, ensure_base_image

    settings = TRESettings()
    names = names or ["singleuser"]
    for name in names:  # every name checked before a long build starts
        try:
            dockerfile_path(name)
        except ValueError as exc:
            _fail(str(exc))
    if register:
        _catalogue_url()
        if actor is not None:
            from datasets.images import require_image_admin

            _act(require_image_admin, actor)
    if ca_bundle is None and Path("/etc/ssl/certs/ca-certificates.crt").exists():
        ca_bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if ca_bundle is not None and not ca_bundle.is_file():
        _fail(f"CA bundle {ca_bundle} does not exist; give the path of a PEM file with --ca-bundle.")
    client = _docker()
    with console.status("Base image debian:bookworm-slim…") as status:
        ensure_base_image(client, progress=_progress(status, "base image"))
    for name in names:
        build_args = _build_args(client, name)
        with console.status(f"Building {name}…") as status:
            try:
                image_id = build_image(client, name, ca_bundle=ca_bundle, progress=_progress(status, name),
                                       build_args=build_args,
                                       log_dir=settings.home / "logs" if register else None)
            except ImageBuildError as exc:
                if register:
                    from datasets import images as registry

                    _act(registry.record_build_failure, actor or _host_user(), name=name, step=exc.step,
                         log_path=str(exc.log_path))
                _fail(str(exc))
        console.print(f"  {name}: built {image_id}")
        if register:
            _register(client, name, image_id, build_args, actor)


@images_app.command("register")
def images_register(
    name: Annotated[str, typer.Argument(help="The image's name under images/ (singleuser, r, projects/<name>).")],
    image: Annotated[Optional[str], typer.Option(
        help="The engine's image (tag or id) to register; default: tre/NAME:latest.")] = None,
    actor: AsAdmin = None,
) -> None:
    """Register an image that is already built (e.g. by ./setup.sh), without building it again."""
    from docker.errors import ImageNotFound

    from images.build import dockerfile_path

    try:
        dockerfile_path(name)
    except ValueError as exc:
        _fail(str(exc))
    _catalogue_url()
    client = _docker()
    reference = image or f"tre/{name}:latest"
    try:
        built = client.images.get(reference)
    except ImageNotFound:
        _fail(f"The Docker engine has no image {reference}; build it with `tre images build {name}`.")
    labels = built.labels or {}
    if labels.get("tre.image", name) != name:  # e.g. tre/singleuser:latest registered as r
        _fail(f"{reference} was built from images/{labels['tre.image']}, not images/{name}; nothing was registered.")
    base = {"BASE": labels["tre.base"]} if labels.get("tre.base") else {}
    _register(client, name, built.id, base, actor)


@images_app.command("list")
def images_list() -> None:
    """Registered images: versions, status, packages, projects pinned to them."""
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from datasets.models import AnalysisImage
    from images.sbom import count_by_ecosystem

    table = Table("image", "status", "digest", "built", "by", "Python pkgs", "Debian pkgs", "projects pinned")
    with session_scope(_catalogue_url()) as session:
        for image in session.scalars(select(AnalysisImage).options(selectinload(AnalysisImage.projects))
                                     .order_by(AnalysisImage.name, AnalysisImage.version)):
            counts = count_by_ecosystem(image.sbom)
            table.add_row(image.reference, image.status.value, image.digest[:19], f"{image.built_at:%Y-%m-%d %H:%M}",
                          image.built_by, str(counts["python"]), str(counts["debian"]),
                          ", ".join(sorted(p.slug for p in image.projects)))
    console.print(table)


def _running_servers(client, digest: str) -> list[dict[str, str]]:
    """This installation's workspaces running ``digest``: by the label the spawner sets, or by
    the container's image id (a container started before the label existed)."""
    instance = TRESettings().instance
    found = []
    for container in client.containers.list(filters={"label": [f"tre.instance={instance}", "tre.component=workspace"]}):
        labels = container.labels
        if labels.get("tre.image-digest") == digest or container.attrs.get("Image") == digest:
            found.append({"container": container.name, "user": labels.get("tre.user", "?"),
                          "project": labels.get("tre.project", "?")})
    return found


@images_app.command("show")
def images_show(reference: Annotated[str, typer.Argument(help="NAME or NAME:VERSION (default: the newest).")]) -> None:
    """One image: where it came from, its packages, projects pinned to it and servers running it."""
    from datasets import images as registry
    from datasets.workflow import WorkflowError

    settings = TRESettings()
    try:
        with session_scope(_catalogue_url()) as session:
            image = registry.find(session, reference)
            pinned = sorted(p.slug for p in image.projects)
    except WorkflowError as exc:
        _fail(str(exc))
    console.print(f"[bold]{image.reference}[/bold]  {image.status.value}  {image.digest}")
    console.print(f"built {image.built_at:%Y-%m-%d %H:%M:%S} by {image.built_by}; build arguments {image.build_args or '{}'}",
                  highlight=False)
    if image.retired_by:
        console.print(f"retired {image.retired_at:%Y-%m-%d %H:%M:%S} by {image.retired_by}")
    console.print(f"projects pinned: {', '.join(pinned) or '(none)'}")
    components = image.sbom.get("components", [])
    console.print(f"{len(components)} packages (name, version, purl):")
    for component in components:  # one per line, whole, so that admins can grep them
        console.print(f"  {component['name']} {component['version']} {component.get('purl', '')}", highlight=False)
    running = _running_servers(_docker(), image.digest)
    if not running:
        console.print("No running workspace uses it.")
        return
    console.print(f"{len(running)} running workspace(s) use it; they go on until stopped. To stop them:")
    hub = f"http://{settings.public_ip}:{settings.public_port}/hub/api"
    for server in running:
        console.print(f"  {server['user']}/{server['project']} ({server['container']}):  "
                      f"curl -X DELETE -H \"Authorization: token $ADMIN_TOKEN\" "
                      f"{hub}/users/{server['user']}/servers/{server['project']}", highlight=False)


@images_app.command("retire")
def images_retire(reference: Annotated[str, typer.Argument(help="NAME:VERSION")], actor: Actor) -> None:
    """Retire an image: no new workspace starts from it; running ones go on until stopped."""
    from datasets import images as registry

    if ":" not in reference:
        _fail(f"Say which version to retire: {reference}:VERSION (`tre images list` lists them).")
    image = _act(registry.retire, actor, reference)
    console.print(f"Image {image.reference} retired: no new workspace starts from it. "
                  f"`tre images show {image.reference}` lists the running ones.")


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
    except IntegrityError as exc:  # a rule the database holds (a grant recorded twice, say)
        _fail(f"The catalogue refused this change, which conflicts with what it holds already "
              f"({exc.orig}). Look at the project with `tre catalogue projects`; nothing was changed.")


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


@projects_app.command("set-image")
def projects_set_image(slug: str, reference: Annotated[str, typer.Argument(help="NAME or NAME:VERSION")],
                       actor: Actor) -> None:
    """Pin a project's workspaces to an image, by digest (new starts use it)."""
    from datasets import images as registry

    # the engine is asked only once the catalogue accepts the rest (who, which project, which image)
    image = _act(registry.pin, actor, slug, reference, lambda digest: _engine_has(_docker(), digest))
    console.print(f"Project {slug} is pinned to {image.reference} ({image.digest}); its next workspace starts use it.")


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
    links = sorted(p.name for p in folder.iterdir() if p.is_symlink())
    if links:
        _fail(f"{', '.join(links)} in {folder} are symbolic links; replace them with the files themselves "
              "(what a workspace reads must be what is hashed).")
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


def _add_plugin_commands() -> None:
    """Commands other packages add to ``tre`` through the ``tre.commands`` entry-point group.

    Each entry point names a function, registered as a command under the entry point's name (e.g.
    ``check`` from ``egress_review``), so ``datasets`` never imports the packages built on it.
    """
    from importlib.metadata import entry_points

    for entry in entry_points(group="tre.commands"):
        app.command(entry.name)(entry.load())


_add_plugin_commands()
