"""Signed checkpoints of the audit log, kept where the database's writers cannot rewrite them.

The hash chain (``datasets.audit``) finds any row changed, deleted or inserted, except at the end:
whoever can write the database can delete the last rows and set the head to the new last row, and
the chain still verifies. Transparency logs close that gap with signed tree heads (RFC 6962); here a
checkpoint says "at this time the log had N rows and its last hash was H", signed with an Ed25519
key kept in the TRE's secrets folder (0600, outside the database), appended as one JSON line to a
file the database's users cannot write (owned by root, opened O_APPEND, made append-only with
``chattr +a`` where the filesystem allows), and published on the public register page so that
anyone can keep a copy off the host. Checkpoints form their own chain (sequence number and the
previous line's sha256), and each is also recorded in the audit log, so a checkpoint removed from
the file, last one included, is named.

Written at a fixed interval by the reconciler's loop (only when the log grew) and after every
release. ``verify`` checks the chain, then every checkpoint: its signature, its place in the
checkpoints' chain, and that the log still holds the row it names with the hash it names.
"""

from __future__ import annotations

import base64
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from datasets import audit
from datasets.audit import AuditAction
from tre_core.db import session_scope
from datasets.models import AuditEvent, AuditHead

log = logging.getLogger(__name__)
KEY_NAME = "audit_checkpoint_ed25519"
GENESIS = "0" * 64
FS_IOC_GETFLAGS, FS_IOC_SETFLAGS, FS_APPEND_FL = 0x80086601, 0x40086602, 0x00000020


def checkpoints_path(home: Path) -> Path:
    """The checkpoints file of the TRE whose state directory is ``home``."""
    return home / "anchor" / "audit-checkpoints.jsonl"


# --- the key ------------------------------------------------------------------------------------

def create_key(secrets_dir: Path) -> bool:
    """Create the signing key (0600) and its public half, once; False when they exist already."""
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    private = secrets_dir / KEY_NAME
    key = Ed25519PrivateKey.generate()
    try:
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as out:
        out.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
        out.flush()
        os.fsync(out.fileno())
    (secrets_dir / f"{KEY_NAME}.pub").write_bytes(public_pem(key.public_key()))
    return True


def signing_key(secrets_dir: Path) -> Ed25519PrivateKey:
    create_key(secrets_dir)
    return serialization.load_pem_private_key((secrets_dir / KEY_NAME).read_bytes(), password=None)


def public_key(secrets_dir: Path) -> Ed25519PublicKey:
    return serialization.load_pem_public_key((secrets_dir / f"{KEY_NAME}.pub").read_bytes())


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(public_pem(key)).hexdigest()[:16]


# --- the file -----------------------------------------------------------------------------------

def make_append_only(path: Path) -> str | None:
    """Create the file (root-owned, 0644) and set the filesystem's append-only flag (``chattr +a``):
    then not even root can rewrite or delete it without first removing the flag, which needs
    CAP_LINUX_IMMUTABLE. None when set; otherwise why not (the file is still opened O_APPEND)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        flags = struct.unpack("i", fcntl.ioctl(fd, FS_IOC_GETFLAGS, struct.pack("i", 0)))[0]
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("i", flags | FS_APPEND_FL))
    except OSError as error:
        return f"{path.parent}'s filesystem does not take the append-only flag ({error.strerror})"
    finally:
        os.close(fd)
    return None


def is_append_only(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        flags = struct.unpack("i", fcntl.ioctl(fd, FS_IOC_GETFLAGS, struct.pack("i", 0)))[0]
    except OSError:
        return False
    finally:
        os.close(fd)
    return bool(flags & FS_APPEND_FL)


def read_checkpoints(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _signed_part(checkpoint: dict[str, Any]) -> bytes:
    body = {k: v for k, v in checkpoint.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _line_digest(line: str) -> str:
    return hashlib.sha256(line.encode()).hexdigest()


# --- writing ------------------------------------------------------------------------------------

def write_checkpoint(database_url: str, secrets_dir: Path, path: Path, *, reason: str,
                     only_if_grown: bool = False) -> dict[str, Any] | None:
    """Sign the log's current head and append it to ``path``, then record it in the log.

    The line is on disk (fsync) before the audit event that names it is committed, so the log never
    names a checkpoint the file lacks. ``only_if_grown``: nothing when the log holds no row since the
    last checkpoint but that checkpoint's own record (the interval writer)."""
    key = signing_key(secrets_dir)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    with os.fdopen(fd, "r+", encoding="utf-8") as stream, session_scope(database_url) as session:
        fcntl.flock(stream.fileno(), fcntl.LOCK_EX)  # one writer numbers the next checkpoint
        stream.seek(0)
        lines = [line.rstrip("\n") for line in stream if line.strip()]
        last = json.loads(lines[-1]) if lines else None
        head = session.get(AuditHead, 1)
        if only_if_grown and last is not None and _nothing_since(session, last, head.seq):
            return None
        checkpoint = {"checkpoint": (last["checkpoint"] + 1) if last else 1, "rows": head.seq, "head": head.hash,
                      "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "reason": reason,
                      "previous": _line_digest(lines[-1]) if lines else GENESIS, "key": key_id(key.public_key())}
        checkpoint["signature"] = base64.b64encode(key.sign(_signed_part(checkpoint))).decode()
        stream.write(json.dumps(checkpoint, sort_keys=True, separators=(",", ":")) + "\n")
        stream.flush()
        os.fsync(stream.fileno())
        audit.record(session, "audit-anchor", AuditAction.AUDIT_CHECKPOINT,
                     details={"checkpoint": checkpoint["checkpoint"], "rows": checkpoint["rows"], "reason": reason})
    return checkpoint


def _nothing_since(session: Session, last: dict[str, Any], rows: int) -> bool:
    """True when the log holds no row after ``last`` but that checkpoint's own record."""
    if rows != last["rows"] + 1:
        return rows == last["rows"]
    event = session.get(AuditEvent, rows)
    return event is not None and event.action == AuditAction.AUDIT_CHECKPOINT.value


def after_release(database_url: str, secrets_dir: Path) -> None:
    """The checkpoint every release writes; a failure is logged, never undoes the release."""
    try:
        write_checkpoint(database_url, secrets_dir, checkpoints_path(secrets_dir.parent), reason="release")
    except Exception:  # noqa: BLE001 - the release is done; the interval writer anchors it next
        log.exception("could not write the audit checkpoint after a release")


# --- verifying ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class AnchoredVerification:
    ok: bool
    rows: int
    checkpoints: int
    problems: tuple[str, ...] = ()


def _checkpoint_problems(checkpoints: list[dict[str, Any]], lines: list[str], key: Ed25519PublicKey) -> list[str]:
    problems, expected, previous = [], 1, GENESIS
    for checkpoint, line in zip(checkpoints, lines):
        number = checkpoint.get("checkpoint")
        try:
            key.verify(base64.b64decode(checkpoint.get("signature", "")), _signed_part(checkpoint))
        except (InvalidSignature, ValueError):
            problems.append(f"checkpoint {number} is forged: its signature is not the audit key's")
        if number != expected:
            problems.append(f"checkpoint {expected} was removed from the checkpoints file (next is {number})"
                            if isinstance(number, int) and number > expected
                            else f"checkpoint {number} is out of place (expected {expected})")
        elif checkpoint.get("previous") != previous:
            problems.append(f"checkpoint {number} does not follow the checkpoint before it (removed or rewritten)")
        expected, previous = (number if isinstance(number, int) else expected) + 1, _line_digest(line)
    return problems


def verify(session: Session, path: Path, key: Ed25519PublicKey | None) -> AnchoredVerification:
    """The chain, then every checkpoint against the log: names a cut tail (with or without a
    rewritten head), a rewritten row, a forged checkpoint and a removed one."""
    chain = audit.verify(session)
    problems = [] if chain.ok else [f"the chain is broken at row {chain.first_bad_seq}: {chain.problem}"]
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()] if path.exists() else []
    checkpoints = [json.loads(line) for line in lines]
    if key is not None:
        problems += _checkpoint_problems(checkpoints, lines, key)
    elif checkpoints:
        problems.append("the audit key's public half is missing, so no checkpoint can be checked; restore it")
    hashes = dict(session.execute(select(AuditEvent.seq, AuditEvent.hash)).all())
    rows = max(hashes, default=0)
    genuine = [c for c in checkpoints if not any(p.startswith(f"checkpoint {c.get('checkpoint')} is forged")
                                                 for p in problems)]
    newest = genuine[-1] if genuine else None
    if newest is not None and rows < newest["rows"]:
        hidden = " and the head was rewritten to hide it" if chain.ok else ""
        problems.append(f"the log was cut: rows {rows + 1} to {newest['rows']} were deleted after checkpoint "
                        f"{newest['checkpoint']} of {newest['at']} (which counted {newest['rows']} rows){hidden}")
    for checkpoint in genuine:
        kept = hashes.get(checkpoint["rows"])
        if kept is not None and kept != checkpoint["head"]:
            problems.append(f"row {checkpoint['rows']} is not the one checkpoint {checkpoint['checkpoint']} signed: "
                            "the log was rewritten from there")
            break
    numbers = {c.get("checkpoint") for c in checkpoints}
    recorded = session.scalars(select(AuditEvent).where(AuditEvent.action == AuditAction.AUDIT_CHECKPOINT.value))
    for event in recorded:
        number = (event.details or {}).get("checkpoint")
        if number not in numbers:
            problems.append(f"checkpoint {number}, recorded in the log at row {event.seq}, was removed from the "
                            "checkpoints file")
    return AnchoredVerification(not problems, chain.rows, len(checkpoints), tuple(dict.fromkeys(problems)))


def _last_line(path: Path) -> str | None:
    """The file's last line, read from its end (the file grows by one line per checkpoint)."""
    with path.open("rb") as stream:
        stream.seek(max(0, stream.seek(0, os.SEEK_END) - 4096))
        lines = [line for line in stream.read().splitlines() if line.strip()]
    return lines[-1].decode() if lines else None


def checkpoint_if_due(database_url: str, secrets_dir: Path, interval: float) -> dict[str, Any] | None:
    """The interval writer (the reconciler's loop): a checkpoint when ``interval`` seconds have
    passed since the last one and the log grew since."""
    path = checkpoints_path(secrets_dir.parent)
    last = _last_line(path) if path.exists() else None
    if last is not None:
        age = dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(json.loads(last)["at"])
        if age.total_seconds() < interval:
            return None
    return write_checkpoint(database_url, secrets_dir, path, reason="interval", only_if_grown=True)
