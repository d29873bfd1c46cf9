"""The ``tre images`` commands: build analysis images, register them in the catalogue, retire them.

Registered under the ``tre.commands`` entry points (pyproject.toml). ``tre projects set-image``
is here too (it asks the engine whether the image is there): it joins the catalogue's
``projects`` commands through the ``tre.commands.projects`` entry points, so that it is there
whether or not this module was imported before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from datasets.commands import Actor, act, catalogue_url
from tre_core import labels as tre_labels
from tre_core.db import session_scope
from tre_core.settings import TRESettings
from tre_core.terminal import JSON_HELP, console, fail, host_user, print_table, progress

app = typer.Typer(help="Analysis images.", no_args_is_help=True)


def _docker():
    import docker

    try:
        client = docker.from_env(timeout=900)
        client.ping()
    except Exception as exc:  # no engine: say so, not a traceback
        fail(f"The Docker engine does not answer ({exc}); start it (./setup.sh starts one) and try again.")
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
        fail(f"The {name} image is built FROM singleuser, which is not built yet; run `tre images build singleuser` first.")


def _inventory(client, name: str, digest: str) -> dict:
    from images.sbom import InventoryError, read_inventory

    try:
        return read_inventory(client, digest, name, labels={tre_labels.INSTANCE: TRESettings().instance})
    except InventoryError as exc:
        fail(f"{exc}. Nothing was registered.")


def _register(client, name: str, digest: str, build_args: dict[str, str], actor: Optional[str]) -> None:
    """Register a built image in the catalogue (its SBOM read from a throwaway container)."""
    from datasets import images as registry
    from images.build import dockerfile_path

    with console.status(f"Listing the packages of {name}…"):
        sbom = _inventory(client, name, digest)
    registration = act(registry.register, actor or host_user(), name=name, digest=digest,
                       dockerfile=dockerfile_path(name).read_text(), build_args=build_args, sbom=sbom,
                       by_host_user=actor is None)
    image = registration.image
    if registration.created:
        console.print(f"  registered {image.reference} ({digest}), {len(sbom['components'])} packages")
    else:
        console.print(f"  {name}: this build ({digest}) is registered already as {image.reference}; nothing changed")


AsAdmin = Annotated[Optional[str], typer.Option(
    "--as", help="Your username in the catalogue (an admin); default: your login on this host.")]


@app.command("build")
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
            fail(str(exc))
    if register:
        catalogue_url()
        if actor is not None:
            from datasets.images import require_image_admin

            act(require_image_admin, actor)
    if ca_bundle is None and Path("/etc/ssl/certs/ca-certificates.crt").exists():
        ca_bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if ca_bundle is not None and not ca_bundle.is_file():
        fail(f"CA bundle {ca_bundle} does not exist; give the path of a PEM file with --ca-bundle.")
    client = _docker()
    with console.status("Base image debian:bookworm-slim…") as status:
        ensure_base_image(client, progress=progress(status, "base image"))
    for name in names:
        build_args = _build_args(client, name)
        with console.status(f"Building {name}…") as status:
            try:
                image_id = build_image(client, name, ca_bundle=ca_bundle, progress=progress(status, name),
                                       build_args=build_args,
                                       log_dir=settings.home / "logs" if register else None)
            except ImageBuildError as exc:
                if register:
                    from datasets import images as registry

                    act(registry.record_build_failure, actor or host_user(), name=name, step=exc.step,
                        log_path=str(exc.log_path))
                fail(str(exc))
        console.print(f"  {name}: built {image_id}")
        if register:
            _register(client, name, image_id, build_args, actor)


@app.command("register")
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
        fail(str(exc))
    catalogue_url()
    client = _docker()
    reference = image or f"tre/{name}:latest"
    try:
        built = client.images.get(reference)
    except ImageNotFound:
        fail(f"The Docker engine has no image {reference}; build it with `tre images build {name}`.")
    labels = built.labels or {}
    if labels.get(tre_labels.IMAGE, name) != name:  # e.g. tre/singleuser:latest registered as r
        fail(f"{reference} was built from images/{labels[tre_labels.IMAGE]}, not images/{name}; nothing was registered.")
    base = {"BASE": labels[tre_labels.BASE]} if labels.get(tre_labels.BASE) else {}
    _register(client, name, built.id, base, actor)


@app.command("list")
def images_list(as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False) -> None:
    """Registered images: versions, status, packages, projects pinned to them."""
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from datasets.models import AnalysisImage
    from images.sbom import count_by_ecosystem

    rows = []
    with session_scope(catalogue_url()) as session:
        for image in session.scalars(select(AnalysisImage).options(selectinload(AnalysisImage.projects))
                                     .order_by(AnalysisImage.name, AnalysisImage.version)):
            counts = count_by_ecosystem(image.sbom)
            # a person's terminal gets the short digest; JSON and pipes get the whole one
            digest = image.digest if as_json or not console.is_terminal else image.digest[:19]
            rows.append([image.reference, image.status.value, digest, f"{image.built_at:%Y-%m-%d %H:%M}",
                         image.built_by, str(counts["python"]), str(counts["debian"]),
                         ", ".join(sorted(p.slug for p in image.projects))])
    print_table(["image", "status", "digest", "built", "by", "python_packages", "debian_packages", "projects_pinned"],
                rows, as_json=as_json)


def _running_servers(client, digest: str) -> list[dict[str, str]]:
    """This installation's workspaces running ``digest``: by the label the spawner sets, or by
    the container's image id (a container started before the label existed)."""
    instance = TRESettings().instance
    found = []
    for container in client.containers.list(filters={"label": tre_labels.workspaces_filter(instance)}):
        labels = container.labels
        if labels.get(tre_labels.IMAGE_DIGEST) == digest or container.attrs.get("Image") == digest:
            found.append({"container": container.name, "user": labels.get(tre_labels.USER, "?"),
                          "project": labels.get(tre_labels.PROJECT, "?")})
    return found


@app.command("show")
def images_show(reference: Annotated[str, typer.Argument(help="NAME or NAME:VERSION (default: the newest).")]) -> None:
    """One image: where it came from, its packages, projects pinned to it and servers running it."""
    from datasets import images as registry
    from datasets.workflow import WorkflowError

    settings = TRESettings()
    try:
        with session_scope(catalogue_url()) as session:
            image = registry.find(session, reference)
            pinned = sorted(p.slug for p in image.projects)
    except WorkflowError as exc:
        fail(str(exc))
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


@app.command("retire")
def images_retire(reference: Annotated[str, typer.Argument(help="NAME:VERSION")], actor: Actor) -> None:
    """Retire an image: no new workspace starts from it; running ones go on until stopped."""
    from datasets import images as registry

    if ":" not in reference:
        fail(f"Say which version to retire: {reference}:VERSION (`tre images list` lists them).")
    image = act(registry.retire, actor, reference)
    console.print(f"Image {image.reference} retired: no new workspace starts from it. "
                  f"`tre images show {image.reference}` lists the running ones.")


def projects_set_image(slug: str, reference: Annotated[str, typer.Argument(help="NAME or NAME:VERSION")],
                       actor: Actor) -> None:
    """Pin a project's workspaces to an image, by digest (new starts use it)."""
    from datasets import images as registry

    # the engine is asked only once the catalogue accepts the rest (who, which project, which image)
    image = act(registry.pin, actor, slug, reference, lambda digest: _engine_has(_docker(), digest))
    console.print(f"Project {slug} is pinned to {image.reference} ({image.digest}); its next workspace starts use it.")
