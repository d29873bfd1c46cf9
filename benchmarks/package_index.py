"""Install time from the TRE's package index against the same install from a local wheel folder,
and the index's memory at rest.

    .venv/bin/python benchmarks/package_index.py [--package lifelines] [--rounds 3]

The package's wheels (for the images' Python) are downloaded once on the host, served as the
upstream of a real hub's index (a PEP 503 page on the loopback, as tests/package_upstream.py
does), published with `tre packages allowlist`, then installed with `pip install --target` (every
dependency, nothing reused) twice per round: from the index, with a running workspace's token as
pip's password exactly as in the workspace, and with `--no-index --find-links` from the folder.
Both run on the host, so the ratio is the index's cost (goal: 1.3 or less). Memory at rest is the
resident size of the index service's process after the rounds.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from package_index.fetch import ABI, PLATFORMS, PYTHON_VERSION  # noqa: E402
from tests.integration.conftest import Hub  # noqa: E402
from tests.package_upstream import upstream_index, write_simple_index  # noqa: E402


def timed_install(package: str, source: list[str]) -> float:
    target = Path(tempfile.mkdtemp(prefix="tre-bench-install-"))
    try:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pip", "install", "--isolated", "--quiet", "--no-cache-dir",
                        "--disable-pip-version-check", "--target", str(target), *source, package], check=True)
        return time.perf_counter() - started
    finally:
        shutil.rmtree(target, ignore_errors=True)


def service_rss_mib(instance: str) -> float:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"package_index" in cmdline and f"TRE_INSTANCE={instance}".encode() in environ:
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    raise RuntimeError(f"no package index process of instance {instance}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--package", default="lifelines")
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tre-bench-upstream-"))
    wheels = root / "files"
    platform = [a for p in PLATFORMS for a in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary", ":all:", "--python-version",
                    PYTHON_VERSION, "--implementation", "cp", "--abi", ABI, "--abi", "abi3", "--abi", "none", *platform,
                    "-d", str(wheels), arguments.package], check=True)
    files = sorted(wheels.glob("*.whl"))
    write_simple_index(root, files)
    size = sum(f.stat().st_size for f in files) / 2**20
    client = docker.from_env(timeout=120)
    with upstream_index(root) as upstream:
        hub = Hub(client, settings={"TRE_PACKAGE_UPSTREAM_URL": upstream})
        try:
            hub.tre("packages", "allowlist", arguments.package, "--as", "admin")
            hub.start_process()
            alice = hub.login("alice")
            container = hub.start(alice, "alice", "cardio-risk")
            token = container.exec_run(["printenv", "JUPYTERHUB_API_TOKEN"]).output.decode().strip()
            index = f"http://workspace:{token}@127.0.0.1:{hub.env['TRE_PACKAGE_INDEX_PORT']}/simple/"
            from_index, from_folder = [], []
            timed_install(arguments.package, ["--index-url", index])  # warm the page cache of both
            for _ in range(arguments.rounds):
                from_index.append(timed_install(arguments.package, ["--index-url", index]))
                from_folder.append(timed_install(arguments.package, ["--no-index", "--find-links", str(wheels)]))
            time.sleep(5)
            rss = service_rss_mib(hub.instance)
        finally:
            hub.close()
            shutil.rmtree(root, ignore_errors=True)
    index_s, folder_s = statistics.median(from_index), statistics.median(from_folder)
    print(f"package: {arguments.package} with its dependencies, {len(files)} wheels, {size:.0f} MiB")
    print(f"{'':28}{'median s':>10}{'runs':>30}")
    print(f"{'from the TRE index':28}{index_s:>10.2f}{str([round(t, 2) for t in from_index]):>30}")
    print(f"{'from a local wheel folder':28}{folder_s:>10.2f}{str([round(t, 2) for t in from_folder]):>30}")
    print(f"ratio index / folder: {index_s / folder_s:.2f} (goal: 1.3 or less)")
    print(f"package index memory at rest (RSS): {rss:.0f} MiB")


if __name__ == "__main__":
    main()
