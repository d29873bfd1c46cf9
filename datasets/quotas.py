"""Storage quotas: how much a project (``/project``), a person in a project (their home) and one
workspace (``/tmp``) may write, and how much they use.

The catalogue holds each project's quotas (``Project.project_quota`` …, Docker's size form: 20G,
512M); an empty one takes the installation's default from the settings. The kernel enforces them:
``/tmp`` is a tmpfs of that size and ``/project`` and each home are filesystems of their own, of
exactly their quota, which the spawner's host side makes and mounts (``spawner/storage.py``). So
usage is what the kernel says of that filesystem (``statvfs``), read here for the pages.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

SIZE_PATTERN = r"^[1-9][0-9]*[kmgtKMGT]?$"
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def size_bytes(size: str) -> int:
    """Docker's size form (``20G``, ``512m``, ``1048576``) in bytes."""
    found = re.fullmatch(r"([1-9][0-9]*)([kmgtKMGT]?)", size.strip())
    if found is None:
        raise ValueError(f"{size!r} is not a size; write a whole number with an optional unit: 512M, 20G")
    return int(found.group(1)) * _UNITS[found.group(2).lower()]


def human(size: int) -> str:
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} B"


@dataclass(frozen=True)
class StorageQuotas:
    project: int  # bytes of /project, shared by the project's members
    home: int  # bytes of each member's home in the project
    tmp: int  # bytes of one workspace's /tmp (memory: a tmpfs)

    @classmethod
    def of(cls, project_quota: str | None, home_quota: str | None, tmp_quota: str | None,
           defaults: StorageQuotas) -> StorageQuotas:
        """A project's quotas: its own where the catalogue sets them, else the defaults."""
        return cls(size_bytes(project_quota) if project_quota else defaults.project,
                   size_bytes(home_quota) if home_quota else defaults.home,
                   size_bytes(tmp_quota) if tmp_quota else defaults.tmp)


def default_quotas(settings) -> StorageQuotas:
    return StorageQuotas(size_bytes(settings.project_quota), size_bytes(settings.home_quota),
                         size_bytes(settings.tmp_quota))


# --- where each quota's filesystem lives on the host (never inside a workspace) -----------------

def shared_folder(workspaces_root: Path, project: str) -> Path:
    return workspaces_root / project / "shared"


def home_folder(workspaces_root: Path, project: str, username: str) -> Path:
    return workspaces_root / project / "homes" / username


def storage_folder(workspaces_root: Path, project: str) -> Path:
    """The images of a project's filesystems: beside its mounted folders, mounted in no workspace."""
    return workspaces_root / project / "storage"


@dataclass(frozen=True)
class Usage:
    used: int
    quota: int

    def line(self) -> str:
        return f"{human(self.used)} / {human(self.quota)}"


def usage(folder: Path, quota: int) -> Usage | None:
    """What the folder's own filesystem holds, against its quota; None until it is first mounted
    (before the project's first start)."""
    if not os.path.ismount(folder):
        return None
    found = os.statvfs(folder)
    return Usage((found.f_blocks - found.f_bfree) * found.f_frsize, quota)


# --- what the pages show -----------------------------------------------------------------------

@dataclass(frozen=True)
class ProjectStorage:
    slug: str
    quotas: StorageQuotas
    project: Usage | None  # None: not made yet (no start so far)
    homes: dict[str, Usage | None]  # username -> their home's usage in this project

    @property
    def homes_used(self) -> int:
        return sum(u.used for u in self.homes.values() if u is not None)


def project_storage(session, slugs: list[str] | None = None, username: str | None = None, *,
                    workspaces_root: Path, defaults: StorageQuotas) -> list[ProjectStorage]:
    """Usage and quota of each project in ``slugs`` (all when None): its /project and its members'
    homes, or only ``username``'s home when given (a researcher sees their own)."""
    from sqlalchemy import select

    from datasets.models import Membership, Project

    query = select(Project).order_by(Project.slug)
    if slugs is not None:
        query = query.where(Project.slug.in_(slugs))
    found = []
    for project in session.scalars(query):
        quotas = StorageQuotas.of(project.project_quota, project.home_quota, project.tmp_quota, defaults)
        people = [username] if username else list(session.scalars(
            select(Membership.username).where(Membership.project_slug == project.slug).order_by(Membership.username)))
        found.append(ProjectStorage(
            project.slug, quotas, usage(shared_folder(workspaces_root, project.slug), quotas.project),
            {person: usage(home_folder(workspaces_root, project.slug, person), quotas.home) for person in people}))
    return found
