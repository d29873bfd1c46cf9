"""Project pseudonyms: HMAC-SHA256 of the database person key under the project's own secret key.

The key is made once per project, 32 random bytes in ``<state>/secrets/extracts/<project>.key``
(mode 0600, in a 0700 folder that no workspace mounts). The same person gets the same pseudonym in
all of one project's datasets, and unrelated pseudonyms in two projects, since they hold different
keys. A pseudonym is the digest's first 8 bytes with the sign bit cleared: a non-negative BIGINT
``person_id`` that joins fast; ``benchmarks/extracts.py`` counts collisions over 10⁷ people.

DuckDB computes it (``pseudonym_sql``), from the standard HMAC construction
H((K ⊕ opad) ‖ H((K ⊕ ipad) ‖ m)) over its own ``sha256``, once per row of the distinct-person
table the engine builds; ``pseudonym`` is the same in Python, for checks.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

KEY_BYTES = 32
BLOCK = 64  # SHA-256's block size
MASK_63 = (1 << 63) - 1


def key_path(secrets_dir: Path, project: str) -> Path:
    return secrets_dir / "extracts" / f"{project}.key"


def project_key(secrets_dir: Path, project: str) -> bytes:
    """The project's key, made on first use. Made with a hard link from a private temporary file,
    so two builds starting at once agree on one key (the second link fails and reads the first)."""
    path = key_path(secrets_dir, project)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path.parent, 0o700)
        temporary = path.parent / f".{project}.{secrets.token_hex(8)}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, (secrets.token_hex(KEY_BYTES) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    key = bytes.fromhex(path.read_text().strip())
    if len(key) != KEY_BYTES:
        raise ValueError(f"{path} does not hold a {KEY_BYTES}-byte key; restore it from the backup of the "
                         "secrets folder (a new key would give the project new pseudonyms).")
    return key


def pads(key: bytes) -> tuple[bytes, bytes]:
    """HMAC's inner and outer padded keys (RFC 2104)."""
    padded = key.ljust(BLOCK, b"\0") if len(key) <= BLOCK else hashlib.sha256(key).digest().ljust(BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in padded), bytes(b ^ 0x5C for b in padded)


def pseudonym(key: bytes, person_key: str) -> int:
    digest = hmac.new(key, person_key.encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") & MASK_63


def pseudonym_sql(column: str, ipad: str = "hk.ipad", opad: str = "hk.opad") -> str:
    """The pseudonym of ``column`` (VARCHAR) in DuckDB, the padded keys read from a one-row table."""
    digest = f"sha256({opad} || unhex(sha256({ipad} || encode({column}))))"
    return f"(('0x' || left({digest}, 16))::UBIGINT & {MASK_63}::UBIGINT)::BIGINT"
