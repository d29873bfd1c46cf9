"""Dataset versions: recorded beside each other, each with its manifest; suspended when a check
finds it changed, retired when replaced. A grant names the version it may mount."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from datasets import audit
from datasets.audit import AuditAction
from datasets.manifest import Manifest, ManifestError, build_manifest, make_read_only
from datasets.models import Dataset, DatasetVersion, Grant, Person, VersionStatus


class VersionError(ValueError):
    """A version act that cannot be done; the message says what to do instead."""


def manifest_of(data_root: Path, storage_path: str, progress=None, describe: tuple[str, str] | None = None) -> Manifest:
    """Check, hash and describe a dataset folder under the data root (nothing recorded yet)."""
    root = data_root.resolve()
    folder = data_root / storage_path
    if folder.exists() and not folder.resolve().is_relative_to(root):
        raise ManifestError(f"{folder} leads outside the data root {root} (a symbolic link); put the files "
                            "under the data root itself. Nothing was registered.")
    return build_manifest(folder, progress=progress, describe=describe)


def record_version(session: Session, dataset: Dataset, manifest: Manifest, by: str,
                   data_root: Path | None = None) -> DatasetVersion:
    """Record ``dataset.version`` with its manifest beside the versions already there, and make
    it the dataset's newest. The same version again with the same root hash changes nothing; with
    another root hash it is refused (a changed dataset is a new version)."""
    existing = session.get(DatasetVersion, (dataset.slug, dataset.version))
    if existing is not None:
        if existing.root_hash != manifest.root_hash or existing.storage_path != dataset.storage_path:
            raise VersionError(
                f"Dataset {dataset.slug} {dataset.version} is registered already with other files (root hash "
                f"{existing.root_hash[:12]}…, now {manifest.root_hash[:12]}…); register the changed files as a "
                "new version. Nothing was registered.")
        if existing.files != manifest.rows():  # same content, copied back (new inodes): the new places
            existing.files = manifest.rows()
        return existing
    dataset.file_hashes = {f.path: f.sha256 for f in manifest.files}
    dataset.row_count = manifest.row_count
    version = DatasetVersion(
        dataset_slug=dataset.slug, version=dataset.version, storage_path=dataset.storage_path,
        root_hash=manifest.root_hash, files=manifest.rows(),
        tables={name: dict(info) for name, info in manifest.tables.items()},
        row_count=manifest.row_count, byte_count=manifest.byte_count, status=VersionStatus.ACTIVE,
        registered_at=dt.datetime.now(dt.UTC), registered_by=by)
    session.add(dataset)
    session.add(version)
    session.flush()
    if data_root is not None:
        make_read_only(data_root / dataset.storage_path)
    return version


def _version(session: Session, slug: str, version: str) -> DatasetVersion:
    row = session.get(DatasetVersion, (slug, version))
    if row is None:
        known = ", ".join(v for v in session.scalars(
            select(DatasetVersion.version).where(DatasetVersion.dataset_slug == slug))) or "none"
        raise VersionError(f"There is no version {version} of dataset {slug} (registered: {known}); "
                           "`tre datasets list` lists them.")
    return row


def suspend(session: Session, actor: str, slug: str, version: str, reason: str) -> DatasetVersion:
    """No new mount of this version; the reconciler stops running workspaces that mount it."""
    row = _version(session, slug, version)
    if row.status is VersionStatus.SUSPENDED:
        return row
    row.status, row.status_reason = VersionStatus.SUSPENDED, reason
    session.flush()
    audit.record(session, actor, AuditAction.DATASET_SUSPENDED,
                 details={"dataset": slug, "version": version, "reason": reason})
    return row


def retire(session: Session, actor: str, slug: str, version: str) -> DatasetVersion:
    row = _version(session, slug, version)
    if row.status is VersionStatus.RETIRED:
        raise VersionError(f"Dataset {slug} {version} is retired already.")
    row.status, row.status_reason = VersionStatus.RETIRED, f"retired by {actor}"
    session.flush()
    audit.record(session, actor, AuditAction.DATASET_RETIRED, details={"dataset": slug, "version": version})
    return row


def projects_granted(session: Session, slug: str, version: str, today: dt.date) -> list[str]:
    return sorted(set(session.scalars(select(Grant.project_slug).where(
        Grant.dataset_slug == slug, Grant.dataset_version == version,
        Grant.starts_on <= today, Grant.ends_on >= today))))


def steward_contacts(session: Session) -> list[str]:
    """Whom a refusal or a failed check tells: the data stewards, by name and address."""
    stewards = session.scalars(select(Person).where(Person.is_data_steward).order_by(Person.username)).all()
    return [f"{p.display_name} <{p.email}>" if p.email else p.display_name for p in stewards]
