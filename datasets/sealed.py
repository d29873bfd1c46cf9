"""Files sealed with a symmetric key: AES-256-GCM in chunks, the STREAM construction of age and
Tink (Hoang, Reyhanitabar, Rogaway, Vizár 2015), so archives of any size are sealed and opened in
constant memory, and a chunk changed, dropped, reordered or cut off at the end is detected.

Layout: ``MAGIC`` (8 bytes), a random 7-byte nonce prefix, then chunks of up to ``CHUNK`` plaintext
bytes, each followed by its 16-byte tag. Chunk *i*'s nonce is prefix || i (4 bytes, big-endian) ||
1 on the last chunk, 0 otherwise. The key is 32 random bytes kept outside the archives (a file
written from the installation's vault; ``TRE_ARCHIVE_KEY_FILE``).
"""

from __future__ import annotations

import io
import os
import secrets
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"TRESEAL1"
CHUNK = 1 << 20
TAG = 16


class SealError(ValueError):
    """A sealed file that does not open with this key: changed, cut short, or another key's."""


def load_key(path: Path, *, create: bool = False) -> bytes:
    """The 32-byte key from ``path`` (64 hex characters); made there, readable by its owner only,
    when ``create`` and absent."""
    if not path.exists():
        if not create:
            raise SealError(f"The archive key {path} is missing; restore it from the installation's vault "
                            "(TRE_ARCHIVE_KEY_FILE names where it is).")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as stream:
            stream.write(secrets.token_hex(32) + "\n")
    try:
        key = bytes.fromhex(path.read_text().strip())
    except ValueError:
        key = b""
    if len(key) != 32:
        raise SealError(f"The archive key {path} is not 64 hexadecimal characters (32 bytes).")
    return key


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + counter.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


class SealingWriter(io.RawIOBase):
    """A write-only stream that seals what is written to ``target``; ``close`` seals the last chunk."""

    def __init__(self, target: BinaryIO, key: bytes) -> None:
        self.target, self.aead, self.buffer, self.counter = target, AESGCM(key), bytearray(), 0
        self.prefix = secrets.token_bytes(7)
        target.write(MAGIC + self.prefix)

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.buffer += data
        while len(self.buffer) > CHUNK:  # keep at least one byte back: the last chunk is sealed at close
            self._seal(bytes(self.buffer[:CHUNK]), last=False)
            del self.buffer[:CHUNK]
        return len(data)

    def _seal(self, chunk: bytes, last: bool) -> None:
        self.target.write(self.aead.encrypt(_nonce(self.prefix, self.counter, last), chunk, None))
        self.counter += 1

    def close(self) -> None:
        if not self.closed:
            self._seal(bytes(self.buffer), last=True)
            self.buffer.clear()
        super().close()


class OpeningReader(io.RawIOBase):
    """A read-only stream of what ``source`` seals; raises ``SealError`` at the first bad chunk."""

    def __init__(self, source: BinaryIO, key: bytes) -> None:
        head = source.read(len(MAGIC) + 7)
        if head[: len(MAGIC)] != MAGIC:
            raise SealError("This is not a sealed TRE archive (wrong header).")
        self.source, self.aead, self.prefix = source, AESGCM(key), head[len(MAGIC):]
        self.counter, self.pending, self.offset, self.done = 0, b"", 0, False
        self.next_sealed = source.read(CHUNK + TAG)

    def readable(self) -> bool:
        return True

    def _open_next(self) -> None:
        sealed, self.next_sealed = self.next_sealed, self.source.read(CHUNK + TAG)
        last = not self.next_sealed
        try:
            self.pending, self.offset = self.aead.decrypt(_nonce(self.prefix, self.counter, last), sealed, None), 0
        except InvalidTag:
            raise SealError(f"Chunk {self.counter} of the archive does not open with this key: the archive was "
                            "changed or cut short, or it was sealed with another key.") from None
        self.counter += 1
        self.done = last

    def readinto(self, buffer) -> int:
        while self.offset == len(self.pending) and not self.done:
            self._open_next()
        count = min(len(buffer), len(self.pending) - self.offset)
        buffer[:count] = self.pending[self.offset:self.offset + count]
        self.offset += count
        return count
