"""Plans of workspaces whose extracts are built: what a start sees once the extraction service
has done its work, without building any (the extracts engine has its own tests)."""

from __future__ import annotations

import dataclasses
from pathlib import PurePosixPath

from datasets.access import ProjectExtract, WorkspaceAccess


def with_ready_extracts(access: WorkspaceAccess, first_id: int = 1) -> WorkspaceAccess:
    """``access`` with each dataset's extract ready at ``<project>/<dataset>@<version>``."""
    return dataclasses.replace(access, datasets=tuple(
        dataclasses.replace(d, extract=ProjectExtract(
            id=first_id + n, ready=True, path=PurePosixPath(access.project) / f"{d.slug}@{d.version}",
            root_hash="ab" * 32))
        for n, d in enumerate(access.datasets)))
