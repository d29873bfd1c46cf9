"""The released-files zip is streamed: a large file goes out chunk by chunk, and the archive's
memory stays a small fraction of it (measured with tracemalloc, bound by proportion)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tracemalloc
import zipfile

from egress_review.zip_stream import CHUNK_BYTES, stream_zip

SIZE = 48 * 1024 * 1024


def test_a_large_release_zips_to_the_client_without_being_held_in_memory(tmp_path):
    big = tmp_path / "big.bin"
    with big.open("wb") as out:  # incompressible, so the zip is as large as the file
        for _ in range(SIZE // (1024 * 1024)):
            out.write(os.urandom(1024 * 1024))
    small = tmp_path / "decision.json"
    small.write_text('{"released": true}')
    received = tmp_path / "received.zip"
    chunks: list[int] = []

    async def download() -> None:
        with received.open("wb") as client:
            async def send(chunk: bytes) -> None:
                chunks.append(len(chunk))
                client.write(chunk)
                await asyncio.sleep(0)  # the event loop turns between chunks: it is not blocked

            tracemalloc.start()
            try:
                await stream_zip([(big, "big.bin"), (small, "decision.json")], send)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert peak < SIZE / 8, f"peak {peak} bytes for a {SIZE}-byte file: the zip was held in memory"

    asyncio.run(download())
    assert len(chunks) > SIZE // CHUNK_BYTES // 2  # sent as it was written, not at the end
    with zipfile.ZipFile(received) as archive:
        assert archive.namelist() == ["big.bin", "decision.json"]
        assert hashlib.sha256(archive.read("big.bin")).hexdigest() == hashlib.sha256(big.read_bytes()).hexdigest()
        assert archive.read("decision.json") == b'{"released": true}'


def test_a_client_that_goes_away_stops_the_zip(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(4 * CHUNK_BYTES))
    sent: list[int] = []

    async def send(chunk: bytes) -> None:
        sent.append(len(chunk))
        raise ConnectionResetError("client gone")

    try:
        asyncio.run(stream_zip([(big, "big.bin")], send))
    except ConnectionResetError:
        pass
    else:
        raise AssertionError("the zip went on after its client had gone")
    assert len(sent) == 1
