"""The workspace plan: everything a project workspace is, decided from the catalogue with no I/O.

Like KubeSpawner's ``objects.py``, these are pure functions of plain values, so every rule about
mounts, names and limits is unit-tested without an engine; ``docker_adapter`` applies a plan.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from datasets.access import GrantedDataset, WorkspaceAccess
from datasets.quotas import StorageQuotas, home_folder, shared_folder, storage_folder
from tre_core.labels import bridge_name, bridge_prefix, extracts_value, object_labels  # noqa: F401 - bridge_prefix is this module's too

WORKSPACE_UID = 1000
WORKSPACE_GID = 100


class UnsafeStoragePath(ValueError):
    """A mount source that is not one of the project's own extracts: a raw dataset, another
    project's extract, a folder outside the extracts root or one still being built."""


class ExtractNotReady(ValueError):
    """A plan asked for while an extract is still being prepared: the spawner waits first."""


@dataclass(frozen=True)
class Mount:
    source: Path  # on the host
    target: PurePosixPath  # in the workspace
    read_only: bool


@dataclass(frozen=True)
class QuotaVolume:
    """A filesystem of exactly ``size`` bytes, kept in ``image`` and mounted at ``folder`` on the
    host before the workspace starts: writing past it is "No space left on device" (ENOSPC)."""

    folder: Path
    image: Path
    size: int


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
    # /project and the home as filesystems of their quota's size; the host side makes and mounts
    # them (spawner/storage.py) before the folders are prepared. Empty: plain folders, no quota.
    quota_volumes: tuple[QuotaVolume, ...] = ()

    @property
    def dataset_mounts(self) -> tuple[Mount, ...]:
        return tuple(m for m in self.mounts if m.target.parent == PurePosixPath("/data"))


def project_network(instance: str, project: str) -> NetworkPlan:
    """One internal network per project: no route out, nothing of other projects on it."""
    return NetworkPlan(
        name=f"tre-{instance}-{project}",
        bridge=bridge_name(instance, project),
        internal=True,
        labels=object_labels(instance, "network", project=project),
    )


def extract_source(extracts_root: Path, project: str, dataset: GrantedDataset) -> Path:
    """The host folder of ``project``'s ready extract of ``dataset``, and nothing else:
    ``<extracts root>/<project>/<dataset>@<version>``. A path naming anything other (a raw dataset,
    another project's extract, a ``.building-`` folder, a way out with ``..``) is refused."""
    extract = dataset.extract
    if extract is None or not extract.ready or extract.path is None:
        raise ExtractNotReady(f"the extract of {dataset.slug} {dataset.version} for {project} is not ready")
    path = extract.path
    expected = f"{project}/{dataset.slug}@{dataset.version}"
    if path.is_absolute() or ".." in path.parts or str(path) != expected:
        raise UnsafeStoragePath(f"extract path {path} of {dataset.slug} is not {expected} below the extracts root")
    return extracts_root.joinpath(*path.parts)


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
    extracts_root: Path,
    workspaces_root: Path,
    default_mem_limit: str,
    default_cpu_limit: float,
    pids_limit: int = 512,
    ui_language: str = "en",
    read_max_bytes: int = 5 * 1024**2,
    quotas: StorageQuotas | None = None,
) -> WorkspacePlan:
    """The workspace of ``access.username`` in ``access.project``, as the catalogue allows it today.

    ``image`` is the digest (image id) the catalogue pins for the project, never a name a request
    chose: the container runs exactly that.

    Only the project's extracts of its datasets in force are mounted, each read-only under
    ``/data/<slug>``; no dataset itself is ever mounted (``extract_source``);
    ``/project`` is shared read-write by the project's members; the home is per user and project.
    With ``quotas``, each is a filesystem of its quota's size and ``/tmp`` a tmpfs of its own.
    """
    home_source = home_folder(workspaces_root, access.project, access.username)
    shared_source = shared_folder(workspaces_root, access.project)
    quota_volumes: tuple[QuotaVolume, ...] = ()
    hardening = Hardening(pids_limit=pids_limit)
    if quotas is not None:
        images = storage_folder(workspaces_root, access.project)
        quota_volumes = (QuotaVolume(shared_source, images / "shared.ext4", quotas.project),
                         QuotaVolume(home_source, images / f"home-{access.username}.ext4", quotas.home))
        hardening = Hardening(pids_limit=pids_limit, tmpfs=(("/tmp", f"rw,nosuid,nodev,size={quotas.tmp}"),))
    home = PurePosixPath("/home") / access.username
    mounts = tuple(
        Mount(extract_source(extracts_root, access.project, d), PurePosixPath("/data") / d.slug, read_only=True)
        for d in access.datasets
    ) + (
        Mount(shared_source, PurePosixPath("/project"), read_only=False),
        Mount(home_source, home, read_only=False),
    )
    # The datasets it mounts and which extract of each, so the reconciler sees a grant end or an
    # extract replaced without asking the container, and the image it runs, so `tre images show`
    # finds the servers still on a retired image.
    labels = object_labels(instance, "workspace", project=access.project, user=access.username,
                           datasets=",".join(d.slug for d in access.datasets),
                           extracts=extracts_value({d.slug: d.extract.id for d in access.datasets
                                                    if d.extract is not None and d.extract.id is not None}),
                           **{"image-digest": image})
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
            # the workspace's server shows no file larger than this in the browser (tre_file_reads)
            "TRE_READ_MAX_BYTES": str(read_max_bytes),
        },
        labels=labels,
        mem_limit=access.mem_limit or default_mem_limit,
        cpu_limit=access.cpu_limit or default_cpu_limit,
        hardening=hardening,
        writable_root=workspaces_root,
        writable_dirs=(shared_source, shared_source / "outputs", home_source),
        dataset_versions=tuple((d.slug, d.version) for d in access.datasets),
        quota_volumes=quota_volumes,
    )


def package_index_env(gateway: str, port: int, token: str) -> dict[str, str]:
    """pip's settings in a workspace: the TRE's package index on the project network's gateway,
    and no other. The start's own JupyterHub token is the password, so the index knows which
    workspace (and so which project and policy) asks; it changes at every start, so it lives in
    the environment rather than in a pip.conf in the (persistent) home."""
    index = f"http://{gateway}:{port}"
    return {
        "PIP_INDEX_URL": f"http://workspace:{token}@{gateway}:{port}/simple/",
        # plain HTTP on the project's own bridge, which no other machine sees: pip must be told
        "PIP_TRUSTED_HOST": f"{gateway}:{port}",
        "PIP_NO_INPUT": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "TRE_PACKAGE_INDEX_URL": index,
    }
