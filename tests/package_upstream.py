"""A throwaway upstream index for the package index's tests: tiny wheels of our own, served as a
PEP 503 simple index by ``python -m http.server`` on the loopback, so no test depends on PyPI."""

from __future__ import annotations

import base64
import hashlib
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = (), licence: str = "MIT") -> Path:
    """A pure-Python wheel whose module ``name`` has ``VERSION``."""
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    metadata = "\n".join([f"Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}",
                          f"License-Expression: {licence}", *[f"Requires-Dist: {r}" for r in requires]]) + "\n"
    files = {f"{module}/__init__.py": f"VERSION = {version!r}\n".encode(),
             f"{dist_info}/METADATA": metadata.encode(),
             f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tre-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files.items())
    record += f"{dist_info}/RECORD,,\n"
    path = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for member, data in files.items():
            wheel.writestr(member, data)
        wheel.writestr(f"{dist_info}/RECORD", record)
    return path


def write_simple_index(root: Path, files: list[Path], *, lie_about: str | None = None) -> None:
    """``root/simple/NAME/index.html`` for ``files`` (in ``root/files``); ``lie_about`` names a file
    whose published sha256 is wrong, as a tampered mirror's would be."""
    by_project: dict[str, list[Path]] = {}
    for path in files:
        by_project.setdefault(path.name.split("-")[0].replace("_", "-").lower(), []).append(path)
    for project, paths in by_project.items():
        page = root / "simple" / project
        page.mkdir(parents=True, exist_ok=True)
        links = []
        for path in paths:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if path.name == lie_about:
                digest = "0" * 64
            links.append(f'<a href="../../files/{path.name}#sha256={digest}">{path.name}</a><br>')
        (page / "index.html").write_text("<!DOCTYPE html><html><body>" + "".join(links) + "</body></html>")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def upstream_index(root: Path, bind: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``root`` (``simple/`` and ``files/``) over HTTP; yields the simple index's URL."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", bind, "--directory", str(root)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection((bind, port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"http://{bind}:{port}/simple/"
    finally:
        server.terminate()
        server.wait(10)


def throwaway_upstream(root: Path, *, lie_about: str | None = None) -> list[Path]:
    """Two packages of our own: ``tre-throwaway`` 1.0 and 1.1, which needs ``tre-throwaway-dep``."""
    files = root / "files"
    files.mkdir(parents=True, exist_ok=True)
    wheels = [make_wheel(files, "tre-throwaway", "1.0"),
              make_wheel(files, "tre-throwaway", "1.1", requires=("tre-throwaway-dep>=2",)),
              make_wheel(files, "tre-throwaway-dep", "2.0", licence="BSD-3-Clause")]
    write_simple_index(root, wheels, lie_about=lie_about)
    return wheels
