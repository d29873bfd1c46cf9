"""Read throughput of a large dataset file inside a workspace against the same read on the host.

    .venv/bin/python benchmarks/data_read.py [--size-mib 1024] [--rounds 3]

Datasets reach workspaces as read-only bind mounts, with no copy: the ratio should be close to 1
(aim: 0.95 or more). Both sides read the file warm (it is read once before measuring), so the
figures compare the mount path, not the disk.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import docker

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.integration.conftest import Hub  # noqa: E402

READ = """
import sys, time
path, rounds = sys.argv[1], int(sys.argv[2])
for attempt in range(rounds + 1):
    started = time.perf_counter()
    with open(path, "rb", buffering=0) as stream:
        while stream.read(8 << 20):
            pass
    if attempt:
        print(time.perf_counter() - started)
"""


def host_reads(path: Path, rounds: int) -> list[float]:
    times = []
    for attempt in range(rounds + 1):
        started = time.perf_counter()
        with path.open("rb", buffering=0) as stream:
            while stream.read(8 << 20):
                pass
        if attempt:
            times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    hub = Hub(docker.from_env(timeout=600), scale=0.05)
    try:
        big = hub.home / "data" / "claims" / "large.bin"
        with big.open("wb") as stream:
            for _ in range(args.size_mib):
                stream.write(os.urandom(1 << 20))
        big.chmod(0o644)
        hub.start_process()
        alice = hub.login("alice")
        container = hub.start(alice, "alice", "cardio-risk")
        result = container.exec_run(["python3", "-c", READ, "/data/claims/large.bin", str(args.rounds)], user="1000:100")
        assert result.exit_code == 0, result.output.decode()
        inside = [float(line) for line in result.output.decode().split()]
        outside = host_reads(big, args.rounds)
    finally:
        hub.close()
    mib = args.size_mib
    host_rate, workspace_rate = mib / statistics.median(outside), mib / statistics.median(inside)
    print(f"{'read of ' + str(mib) + ' MiB':<28}{'median s':>10}{'MiB/s':>10}")
    print(f"{'host':<28}{statistics.median(outside):>10.3f}{host_rate:>10.0f}")
    print(f"{'workspace (read-only bind)':<28}{statistics.median(inside):>10.3f}{workspace_rate:>10.0f}")
    print(f"ratio workspace / host throughput: {workspace_rate / host_rate:.2f} (aim >= 0.95), {args.rounds} reads each")


if __name__ == "__main__":
    main()
