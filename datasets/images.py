"""The registry of analysis images: register a build, retire it, pin a project to it.

An enclave has no internet, so the image is a researcher's whole toolbox; admins decide what runs
where and the catalogue remembers it by digest (the engine's image id). As in ``workflow``, every
function runs in the caller's transaction and writes exactly one audit row there, state changes are
conditional UPDATEs (two admins acting at once yield one change), and a refusal raises
:class:`ImageError` with what to do, having changed nothing. Nothing here talks to Docker: the
caller passes what the engine said (a digest, an inventory, whether an image still exists).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from datasets import audit
from datasets.access import AccessRefused, Refusal
from datasets.audit import AuditAction
from datasets.models import AnalysisImage, ImageStatus, Project
from datasets.workflow import PermissionDenied, WorkflowError, require_admin

DEFAULT_IMAGE = "singleuser"  # what a project with no pin runs: the newest active build of it
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
REFERENCE = re.compile(r"^(?P<name>[a-z][a-z0-9/_.-]{0,99})(?::(?P<version>[0-9]+))?$")


class ImageError(WorkflowError):
    """A registry act the rules do not allow; the message says why and what to do."""


@dataclass(frozen=True)
class Registration:
    image: AnalysisImage
    created: bool  # False: this digest was registered already, nothing changed


@dataclass(frozen=True)
class WorkspaceImage:
    """The image a project's workspaces start from, as the spawner needs it."""

    name: str
    version: int
    digest: str
    pinned: bool  # False: the platform default, the project pins nothing


def _require_admin(session: Session, actor: str, act: str = "build, pin and retire analysis images") -> None:
    try:
        require_admin(session, actor)
    except PermissionDenied as denied:
        if "is not an admin" not in str(denied):
            raise
        raise PermissionDenied(f"{actor} is not an admin; only admins {act}.") from None


def require_image_admin(session: Session, actor: str) -> None:
    """Refuse, before a long build starts, someone who could not register its result."""
    _require_admin(session, actor)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def find(session: Session, reference: str) -> AnalysisImage:
    """``NAME:VERSION``, or ``NAME`` for its newest version; an unknown one is refused."""
    match = REFERENCE.match(reference.strip())
    if not match:
        raise ImageError(f"{reference!r} is not an image reference; write NAME or NAME:VERSION, "
                         "for example singleuser:3 (`tre images list` lists them).")
    query = select(AnalysisImage).where(AnalysisImage.name == match["name"])
    if match["version"]:
        query = query.where(AnalysisImage.version == int(match["version"]))
    image = session.scalars(query.order_by(AnalysisImage.version.desc()).limit(1)).first()
    if image is None:
        raise ImageError(f"There is no registered image {reference}; `tre images list` lists them, "
                         f"and `tre images build {match['name']}` builds and registers one.")
    return image


def register(session: Session, actor: str, *, name: str, digest: str, dockerfile: str,
             build_args: dict[str, Any], sbom: dict[str, Any], by_host_user: bool = False) -> Registration:
    """Record a built image as the next version of ``name``. The same digest registered before is
    a no-op that says so (an unchanged rebuild hits the build cache and gives the same id).

    ``by_host_user``: the actor is the host's login (who can reach the Docker engine, as for
    ``tre catalogue load``), not a person of the catalogue, so no catalogue role is checked."""
    if not by_host_user:
        _require_admin(session, actor, "register analysis images")
    if not DIGEST.match(digest):
        raise ImageError(f"{digest!r} is not an image id (sha256:<64 hex digits>); nothing was registered.")
    existing = session.scalars(select(AnalysisImage).where(AnalysisImage.digest == digest)).first()
    if existing is not None:
        return Registration(existing, created=False)
    version = (session.scalar(select(func.max(AnalysisImage.version)).where(AnalysisImage.name == name)) or 0) + 1
    image = AnalysisImage(name=name, version=version, digest=digest, dockerfile=dockerfile,
                          build_args=dict(build_args), built_at=_now(), built_by=actor, sbom=sbom,
                          status=ImageStatus.ACTIVE)
    session.add(image)
    session.flush()  # a concurrent registration of the same version or digest fails here, whole
    components = sbom.get("components", [])
    audit.record(session, actor, AuditAction.IMAGE_BUILT, details={
        "image": name, "version": version, "digest": digest, "build_args": dict(build_args),
        "packages": len(components)})
    return Registration(image, created=True)


def record_build_failure(session: Session, actor: str, *, name: str, step: str, log_path: str) -> None:
    """A build that failed registers nothing, but the attempt is on the record."""
    audit.record(session, actor, AuditAction.IMAGE_BUILD_FAILED,
                 details={"image": name, "step": step, "log": log_path})


def retire(session: Session, actor: str, reference: str) -> AnalysisImage:
    """Retire an image: no new workspace starts from it; running ones go on until stopped."""
    _require_admin(session, actor, "retire analysis images")
    image = find(session, reference)
    if image.status == ImageStatus.RETIRED:
        raise ImageError(f"Image {image.reference} is already retired (by {image.retired_by}); nothing changed.")
    done = session.execute(
        update(AnalysisImage).where(AnalysisImage.id == image.id, AnalysisImage.status == ImageStatus.ACTIVE)
        .values(status=ImageStatus.RETIRED, retired_at=_now(), retired_by=actor)
        .execution_options(synchronize_session=False)
    ).rowcount
    if done != 1:
        raise ImageError(f"Image {image.reference} was retired by someone else meanwhile; nothing changed.")
    session.refresh(image)
    pinned = sorted(p.slug for p in image.projects)
    audit.record(session, actor, AuditAction.IMAGE_RETIRED, details={
        "image": image.name, "version": image.version, "digest": image.digest, "pinned_projects": pinned})
    return image


def pin(session: Session, actor: str, project_slug: str, reference: str,
        engine_has: Callable[[str], bool]) -> AnalysisImage:
    """Pin ``project_slug`` to an active image, by digest. ``engine_has(digest)`` says whether the
    Docker engine still holds an image with exactly that id: a pin to something that cannot start
    is refused now, not at the researcher's next start."""
    _require_admin(session, actor, "choose a project's analysis image")
    project = session.get(Project, project_slug)
    if project is None:
        raise ImageError(f"There is no project {project_slug}; `tre catalogue projects` lists them.")
    image = find(session, reference)
    if image.status != ImageStatus.ACTIVE:
        raise ImageError(f"Image {image.reference} is retired; pin an active image (`tre images list`).")
    if not engine_has(image.digest):
        raise ImageError(
            f"The Docker engine no longer has image {image.reference} ({image.digest}): it was removed or "
            f"rebuilt since it was registered. Build it again with `tre images build {image.name}` and pin "
            "the new version.")
    previous = project.image_id
    done = session.execute(
        update(Project).where(Project.slug == project_slug, Project.image_id.is_(previous)
                              if previous is None else Project.image_id == previous)
        .values(image_id=image.id).execution_options(synchronize_session=False)
    ).rowcount
    if done != 1:
        raise ImageError(f"Project {project_slug}'s image was changed by someone else meanwhile; look again "
                         "with `tre images show` and retry.")
    previous_ref = session.get(AnalysisImage, previous).reference if previous else None
    audit.record(session, actor, AuditAction.IMAGE_PINNED, project=project_slug, details={
        "image": image.name, "version": image.version, "digest": image.digest, "previous": previous_ref})
    return image


def workspace_image(session: Session, project_slug: str) -> WorkspaceImage:
    """The image a new workspace of ``project_slug`` starts from: its pin, or the newest active
    ``singleuser``; refused (``AccessRefused``) when that is retired or when nothing is registered."""
    project = session.get(Project, project_slug)
    image = project.image if project is not None else None
    if image is not None:
        if image.status != ImageStatus.ACTIVE:
            raise AccessRefused(Refusal.IMAGE_RETIRED, project=project_slug, image=image.reference)
        return WorkspaceImage(image.name, image.version, image.digest, pinned=True)
    default = session.scalars(
        select(AnalysisImage).where(AnalysisImage.name == DEFAULT_IMAGE, AnalysisImage.status == ImageStatus.ACTIVE)
        .order_by(AnalysisImage.version.desc()).limit(1)).first()
    if default is None:
        raise AccessRefused(Refusal.NO_IMAGE, project=project_slug, image=DEFAULT_IMAGE)
    return WorkspaceImage(default.name, default.version, default.digest, pinned=False)
