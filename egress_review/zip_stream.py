"""A zip written straight to the HTTP response, chunk by chunk, never held whole in memory.

``zipfile`` writes to any object with ``write``; here that object hands each chunk to the event
loop, which writes and flushes it to the client, and waits until it is sent before taking the
next. So the zip is produced in a worker thread (reading files is blocking), at the client's pace,
with at most one chunk in memory; a client that goes away stops the writer at its next chunk.
"""

from __future__ import annotations

import asyncio
import zipfile
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

CHUNK_BYTES = 256 * 1024


class _ToLoop:
    """A write-only, unseekable file: zipfile then writes data descriptors instead of seeking back."""

    def __init__(self, send: Callable[[bytes], Awaitable[None]], loop: asyncio.AbstractEventLoop) -> None:
        self.send, self.loop = send, loop
        self.pending = bytearray()
        self.written = 0
        self.gone: BaseException | None = None

    def write(self, data: bytes) -> int:
        if self.gone is not None:  # zipfile closing its members after the client went: send nothing
            raise self.gone
        self.pending += data
        self.written += len(data)
        if len(self.pending) >= CHUNK_BYTES:
            self.flush()
        return len(data)

    def tell(self) -> int:
        return self.written

    def flush(self) -> None:
        if self.pending:
            chunk, self.pending = bytes(self.pending), bytearray()
            try:
                asyncio.run_coroutine_threadsafe(self.send(chunk), self.loop).result()
            except BaseException as error:
                self.gone = error
                raise


def _write_zip(entries: Iterable[tuple[Path, str]], sink: _ToLoop) -> None:
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, name in entries:
            with path.open("rb") as source, archive.open(name, "w", force_zip64=True) as member:
                while block := source.read(CHUNK_BYTES):
                    member.write(block)
    sink.flush()


async def stream_zip(entries: Iterable[tuple[Path, str]], send: Callable[[bytes], Awaitable[None]]) -> None:
    """Zip ``entries`` (host path, name in the archive), passing each chunk to ``send`` (which
    writes and flushes it) on this event loop."""
    loop = asyncio.get_running_loop()
    await asyncio.to_thread(_write_zip, list(entries), _ToLoop(send, loop))
