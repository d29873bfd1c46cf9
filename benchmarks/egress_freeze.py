"""Freezing a file into the egress store against a plain copy followed by a sha256 of the copy.

    .venv/bin/python benchmarks/egress_freeze.py [--size-mib 256] [--rounds 5]

Submitting a request copies each file through a descriptor walk with O_NOFOLLOW, hashing as it
copies, then fsyncs and renames it into the store. The plain side does what a naive airlock would
(``shutil.copyfile``, then hash the copy, then fsync): the ratio shows what the safe walk and the
single pass cost or save. Both sides read a warm file; medians of ``--rounds`` runs are printed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from egress_review.store import Store  # noqa: E402


def plain(source: Path, target: Path) -> str:
    shutil.copyfile(source, target)
    digest = hashlib.sha256()
    with target.open("rb") as stream:
        while chunk := stream.read(1024 * 1024):
            digest.update(chunk)
        os.fsync(stream.fileno())
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tre-freeze-") as folder:
        root = Path(folder)
        workspace = root / "workspace"
        workspace.mkdir()
        (workspace / "result.bin").write_bytes(os.urandom(args.size_mib * 1024 * 1024))
        store = Store(root / "egress")
        frozen_times, plain_times = [], []
        for round_ in range(args.rounds + 1):
            started = time.perf_counter()
            frozen = store.freeze(workspace, "result.bin", max_bytes=1 << 40)
            frozen_time = time.perf_counter() - started
            store.path_of(frozen.sha256).chmod(0o600)
            store.path_of(frozen.sha256).unlink()
            started = time.perf_counter()
            assert plain(workspace / "result.bin", root / "copy.bin") == frozen.sha256
            plain_time = time.perf_counter() - started
            (root / "copy.bin").unlink()
            if round_:  # the first round warms the page cache
                frozen_times.append(frozen_time)
                plain_times.append(plain_time)
    frozen_s, plain_s = statistics.median(frozen_times), statistics.median(plain_times)
    print(f"{args.size_mib} MiB, median of {args.rounds}")
    print(f"  freeze (O_NOFOLLOW walk, hash while copying, fsync, rename): {frozen_s:.3f} s "
          f"({args.size_mib / frozen_s:.0f} MiB/s)")
    print(f"  plain copy, then sha256 of the copy, fsync:                  {plain_s:.3f} s "
          f"({args.size_mib / plain_s:.0f} MiB/s)")
    print(f"  ratio freeze / plain: {frozen_s / plain_s:.2f}")


if __name__ == "__main__":
    main()
