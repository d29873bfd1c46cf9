"""The release store: released files with a decision record signed by the service.

The record (``decision.json``) says which request, which files with their sha256, the automatic
check results, who reviewed and decided what, and when, with the written reason of any checker who
overrode an automatic Fail; ``decision.json.sig`` is its Ed25519
signature by the service's key, created once in the secrets folder with its public half beside it.
``verify_release`` proves a release folder is what the service wrote: signature and every digest.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from egress_review.checks import strip
from egress_review.models import ExportRequest, FileKind, Review
from egress_review.store import FULL, create_once, partial_beside, store_full_while
from tre_core import faults
from tre_core.files import fsync_path
from tre_core.hashing import sha256_of

KEY_NAME = "egress_release_ed25519"
RECORD = "decision.json"
SIGNATURE = "decision.json.sig"


def signing_key(secrets_dir: Path) -> Ed25519PrivateKey:
    """The service's release key, created on first use (private 0600, public key beside it).

    Replicas sharing the secrets folder may start at once: ``create_once`` gives them all the key
    whichever wrote first, never a half-written one, so every release is signed by the same key."""
    private_path, public_path = secrets_dir / KEY_NAME, secrets_dir / f"{KEY_NAME}.pub"
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()) \
        if not private_path.exists() else b""
    key = serialization.load_pem_private_key(create_once(private_path, pem), password=None)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    if not public_path.exists() or public_path.read_bytes() != public:
        partial = partial_beside(public_path)
        partial.write_bytes(public)
        os.replace(partial, public_path)
    return key


def public_key(secrets_dir: Path) -> Ed25519PublicKey:
    return serialization.load_pem_public_key((secrets_dir / f"{KEY_NAME}.pub").read_bytes())


def canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def write_release(folder: Path, files: dict[str, Path], record: dict[str, Any], key: Ed25519PrivateKey) -> None:
    """Copy ``files`` (release name → frozen path) and the signed record into ``folder``, atomically.
    A full disk removes the half-written copy and raises ``StoreFull``; the frozen files are untouched."""
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)  # a copy a killed process left half done
    try:
        staging.mkdir(parents=True, mode=0o700)
        for name, source in files.items():
            shutil.copyfile(source, staging / name)
            faults.pause_at("release.copy")
        body = canonical(record)
        (staging / RECORD).write_bytes(body)
        (staging / SIGNATURE).write_text(base64.b64encode(key.sign(body)).decode() + "\n")
        _sync_folder_and_files(staging)  # on disk before the request is recorded as released
    except OSError as failure:
        shutil.rmtree(staging, ignore_errors=True)
        if failure.errno in FULL:
            raise store_full_while("release") from failure
        raise
    shutil.rmtree(folder, ignore_errors=True)  # a release interrupted after its rename is redone whole
    os.replace(staging, folder)
    faults.pause_at("release.renamed")
    _sync_folder_and_files(folder.parent)


def record_of(request: ExportRequest, required: int, path_of: Callable[[str], Path],
              stripped_folder: Path) -> tuple[dict[str, Any], dict[str, Path]]:
    """The decision record of an approved request and its files (release name → path to copy):
    who asked, each output file with its digest, checks and reviews, who released and when."""
    outputs = [f for f in request.files if f.kind == FileKind.OUTPUT]
    groups = {g.name: g for g in request.groups}
    record = {
        "request": request.id, "project": request.project_slug, "author": request.author,
        "title": request.title, "submitted_at": _iso(request.submitted_at),
        "released_by": request.decided_by, "approved_at": _iso(request.decided_at),
        "reviews_required": required,
        "files": [{"name": f.name, "path": f.path, "group": f.group_name, "sha256": f.sha256, "size": f.size,
                   "context": groups[f.group_name].context, "controls": groups[f.group_name].controls,
                   "checks": f.checks or [],
                   "reviews": [review_entry(r) for r in f.reviews]} for f in outputs],
    }
    files = {f.name: path_of(f.sha256) for f in outputs}
    for entry in record["files"]:
        _strip_metadata(entry, files, stripped_folder)
    return record, files


def review_entry(review: Review) -> dict[str, Any]:
    """A review as the record and the pages give it; a Fail's override with its reason when there is one."""
    entry = {"reviewer": review.reviewer, "decision": review.decision.value, "at": _iso(review.at)}
    if review.override_reason:
        entry["override"] = review.override_reason
    return entry


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment else None


def _strip_metadata(entry: dict[str, Any], files: dict[str, Path], stripped_folder: Path) -> None:
    """Release an image without its metadata (EXIF, text chunks): the record keeps both digests."""
    source = files[entry["name"]]
    data = source.read_bytes() if Path(entry["name"]).suffix.lower() in (".png", ".jpg", ".jpeg") else None
    if data is None or (clean := strip.stripped(data, entry["name"])) == data:
        return
    digest = hashlib.sha256(clean).hexdigest()
    target = stripped_folder / f"{digest}{Path(entry['name']).suffix.lower()}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = partial_beside(target)
        try:
            partial.write_bytes(clean)
            partial.replace(target)
        except OSError as failure:
            partial.unlink(missing_ok=True)
            if failure.errno in FULL:
                raise store_full_while("release") from failure
            raise
    entry["released_sha256"], entry["metadata_stripped"] = digest, True
    files[entry["name"]] = target


def _sync_folder_and_files(folder: Path) -> None:
    for path in [*(p for p in folder.iterdir() if p.is_file()), folder]:
        fsync_path(path)


@dataclass(frozen=True)
class ReleaseCheck:
    ok: bool
    problem: str | None = None


def verify_release(folder: Path, key: Ed25519PublicKey) -> ReleaseCheck:
    """Whether the record is signed by the service and every released file has its recorded sha256."""
    try:
        body = (folder / RECORD).read_bytes()
        key.verify(base64.b64decode((folder / SIGNATURE).read_text()), body)
    except FileNotFoundError as missing:
        return ReleaseCheck(False, f"{missing.filename} is missing")
    except (InvalidSignature, ValueError):
        return ReleaseCheck(False, "the decision record's signature does not match: it was changed")
    record = json.loads(body)
    listed = {entry["name"] for entry in record["files"]}
    present = {p.name for p in folder.iterdir()} - {RECORD, SIGNATURE}
    if present != listed:
        return ReleaseCheck(False, f"files not in the record: {sorted(present - listed)}; "
                                   f"missing: {sorted(listed - present)}")
    for entry in record["files"]:
        # An image is released without its metadata: its released digest is recorded beside the reviewed one.
        if sha256_of(folder / entry["name"]) != entry.get("released_sha256", entry["sha256"]):
            return ReleaseCheck(False, f"{entry['name']} differs from the file that was reviewed")
    return ReleaseCheck(True)
