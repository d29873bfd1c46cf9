"""The workspace plan: everything a project workspace is, decided from the catalogue with no I/O.

Like KubeSpawner's ``objects.py``, these are pure functions of plain values, so every rule about
mounts, names and limits is unit-tested without an engine; ``docker_adapter`` applies a plan.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from datasets.catalogue import WorkspaceAccess

WORKSPACE_UID = 1000
WORKSPACE_GID = 100
LABEL_PREFIX = "tre."


class UnsafeStoragePath(ValueError):
    """A dataset's storage path that would mount something outside the data root."""


@dataclass(frozen=True)
class Mount:
    source: Path  # on the host
    target: PurePosixPath  # in the workspace
    read_only: bool


@dataclass(frozen=True)
class NetworkPlan:
    name: str
    bridge: str  # the host's interface name, which the firewall rules match
    internal: bool
    labels: dict[str, str]
    # Docker 20.10 still gives containers on internal networks a default route via the gateway;
    # the hub and everything a workspace may reach are on its own subnet, so it gets none.
    default_route: bool = False


@dataclass(frozen=True)
class Hardening:
    """What the workspace may do to the machine it runs on: as little as Jupyter needs."""

    read_only_root: bool = True
    # Jupyter writes to HOME (mounted) and to /tmp; nothing else of the image is writable.
    tmpfs: tuple[tuple[str, str], ...] = (("/tmp", "rw,nosuid,nodev,size=1g"),)
    drop_capabilities: tuple[str, ...] = ("ALL",)
    no_new_privileges: bool = True
    pids_limit: int = 512


@dataclass(frozen=True)
class WorkspacePlan:
    username: str
    project: str
    image: str
    container_name: str
    mounts: tuple[Mount, ...]
    network: NetworkPlan
    home: PurePosixPath
    working_dir: PurePosixPath
    uid: int
    gid: int
    env: dict[str, str]
    labels: dict[str, str]
    mem_limit: str
    cpu_limit: float
    hardening: Hardening = field(default_factory=Hardening)
    # Host folders the adapter must create (owned by uid:gid) before the mounts can work, all
    # below ``writable_root``, which only the platform writes to.
    writable_dirs: tuple[Path, ...] = field(default=())
    writable_root: Path | None = None
    # (slug, version) of each dataset mounted: where datasets sit on some hosts only (a swarm),
    # the engine places the workspace on a host holding exactly these versions.
    dataset_versions: tuple[tuple[str, str], ...] = ()

    @property
    def dataset_mounts(self) -> tuple[Mount, ...]:
        return tuple(m for m in self.mounts if m.target.parent == PurePosixPath("/data"))


def object_labels(instance: str, component: str, **extra: str) -> dict[str, str]:
    """Labels carried by every Docker object the TRE creates, so it finds (and removes) its own."""
    labels = {f"{LABEL_PREFIX}managed": "true", f"{LABEL_PREFIX}instance": instance,
              f"{LABEL_PREFIX}component": component}
    labels.update({f"{LABEL_PREFIX}{key}": value for key, value in extra.items()})
    return labels


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:6]


def bridge_prefix(instance: str) -> str:
    """``tre`` and six hex digits of the installation: every project bridge of it starts so."""
    return f"tre{_short_hash(instance)}"


def bridge_name(instance: str, project: str) -> str:
    return f"{bridge_prefix(instance)}{_short_hash(project)}"  # 15 characters, Linux's limit


def project_network(instance: str, project: str) -> NetworkPlan:
    """One internal network per project: no route out, nothing of other projects on it."""
    return NetworkPlan(
        name=f"tre-{instance}-{project}",
        bridge=bridge_name(instance, project),
        internal=True,
        labels=object_labels(instance, "network", project=project),
    )


def dataset_source(data_root: Path, storage_path: PurePosixPath) -> Path:
    if storage_path.is_absolute() or ".." in storage_path.parts or not storage_path.parts:
        raise UnsafeStoragePath(f"dataset storage path {storage_path} is not inside the data root")
    return data_root.joinpath(*storage_path.parts)


def container_name(instance: str, project: str, username: str) -> str:
    """Readable, and unique per (project, user) even where names run together: project
    ``cardio`` with user ``risk-alice`` and project ``cardio-risk`` with user ``alice`` would
    otherwise share a name, and DockerSpawner replaces a container whose name is taken."""
    tag = hashlib.sha256(f"{project}\0{username}".encode()).hexdigest()[:10]
    return f"tre-{instance}-{project}-{username}-{tag}"


def make_workspace_plan(
    access: WorkspaceAccess,
    *,
    instance: str,
    image: str,
    data_root: Path,
    workspaces_root: Path,
    default_mem_limit: str,
    default_cpu_limit: float,
    pids_limit: int = 512,
    ui_language: str = "en",
) -> WorkspacePlan:
    """The workspace of ``access.username`` in ``access.project``, as the catalogue allows it today.

    ``image`` is the digest (image id) the catalogue pins for the project, never a name a request
    chose: the container runs exactly that.

    Only the project's datasets in force are mounted, each read-only under ``/data/<slug>``;
    ``/project`` is shared read-write by the project's members; the home is per user and project.
    """
    project_dir = workspaces_root / access.project
    home_source = project_dir / "homes" / access.username
    shared_source = project_dir / "shared"
    home = PurePosixPath("/home") / access.username
    mounts = tuple(
        Mount(dataset_source(data_root, d.storage_path), PurePosixPath("/data") / d.slug, read_only=True)
        for d in access.datasets
    ) + (
        Mount(shared_source, PurePosixPath("/project"), read_only=False),
        Mount(home_source, home, read_only=False),
    )
    # The datasets it mounts, so the reconciler sees a grant end without asking the container.
    # and the image it runs, so `tre images show` finds the servers still on a retired image.
    labels = object_labels(instance, "workspace", project=access.project, user=access.username,
                           datasets=",".join(d.slug for d in access.datasets), **{"image-digest": image})
    return WorkspacePlan(
        username=access.username,
        project=access.project,
        image=image,
        container_name=container_name(instance, access.project, access.username),
        mounts=mounts,
        network=project_network(instance, access.project),
        home=home,
        working_dir=PurePosixPath("/project"),
        uid=WORKSPACE_UID,
        gid=WORKSPACE_GID,
        env={
            "HOME": str(home),
            "TRE_PROJECT": access.project,
            "TRE_DATASETS": ",".join(d.slug for d in access.datasets),
            "TRE_UI_LANGUAGE": ui_language,
        },
        labels=labels,
        mem_limit=access.mem_limit or default_mem_limit,
        cpu_limit=access.cpu_limit or default_cpu_limit,
        hardening=Hardening(pids_limit=pids_limit),
        writable_root=workspaces_root,
        writable_dirs=(shared_source, shared_source / "outputs", home_source),
        dataset_versions=tuple((d.slug, d.version) for d in access.datasets),
    )
