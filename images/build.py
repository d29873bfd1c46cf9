"""Builds the analysis images with the Docker SDK, on a laptop online or in a closed hospital network.

The base is ``debian:bookworm-slim``: pulled where a registry answers, otherwise made here with
debootstrap from the host's Debian mirror and imported under that same name, so one set of
Dockerfiles serves both. Builds take extra CA certificates (a TLS proxy's) into the build context.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import docker
from docker.errors import APIError, ImageNotFound

IMAGES_DIR = Path(__file__).resolve().parent
BASE_IMAGE = "debian:bookworm-slim"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
LABELS = {"tre.managed": "true"}
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
LOG_DIR = Path(os.environ.get("TRE_BUILD_LOG_DIR", tempfile.gettempdir()))

Progress = Callable[[str], None] | None

# What the official slim image leaves out; debootstrap's minbase keeps it unless told.
DPKG_SLIM_EXCLUDES = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
"""


class ImageBuildError(RuntimeError):
    def __init__(self, name: str, step: str, log_tail: str, log_path: Path) -> None:
        self.name, self.step, self.log_tail, self.log_path = name, step, log_tail, log_path
        super().__init__(
            f"Image {name}: the build failed at {step}.\n{log_tail}\n"
            f"Full log: {log_path}. Fix the Dockerfile or requirements and build again; nothing was tagged."
        )


def _say(progress: Progress, line: str) -> None:
    if progress:
        progress(line)


def host_mirror() -> str:
    """The Debian mirror the host's apt uses, so a closed network's mirror works unchanged."""
    sources = [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]
    for path in sources:
        if path.exists():
            match = re.search(r"(?:URIs:|deb)\s+(\S+/debian)\s", path.read_text() + "\n")
            if match:
                return match.group(1)
    return DEFAULT_MIRROR


def ensure_base_image(client: docker.DockerClient, *, progress: Progress = None) -> str:
    """The id of ``debian:bookworm-slim``: present, pulled, or built with debootstrap and imported."""
    try:
        return client.images.get(BASE_IMAGE).id
    except ImageNotFound:
        pass
    try:
        _say(progress, f"pulling {BASE_IMAGE}")
        return client.images.pull(BASE_IMAGE).id
    except APIError as exc:
        _say(progress, f"no registry answers ({exc.explanation}); building the base with debootstrap")
    return _debootstrap_base(client, host_mirror(), progress)


def _debootstrap_base(client: docker.DockerClient, mirror: str, progress: Progress) -> str:
    with tempfile.TemporaryDirectory(prefix="tre-base-") as tmp:
        root = Path(tmp) / "rootfs"
        root.mkdir()
        # dpkg reads this during debootstrap's second stage, so the docs never land at all
        (root / "etc/dpkg/dpkg.cfg.d").mkdir(parents=True)
        (root / "etc/dpkg/dpkg.cfg.d/docker-slim").write_text(DPKG_SLIM_EXCLUDES)
        command = ["debootstrap", "--variant=minbase", "bookworm", str(root), mirror]
        _run_streaming(command, progress)
        security = mirror.rsplit("/debian", 1)[0] + "/debian-security"
        (root / "etc/apt/sources.list").unlink(missing_ok=True)
        (root / "etc/apt/sources.list.d").mkdir(parents=True, exist_ok=True)
        (root / "etc/apt/sources.list.d/debian.sources").write_text(
            f"Types: deb\nURIs: {mirror}\nSuites: bookworm bookworm-updates\nComponents: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
            f"Types: deb\nURIs: {security}\nSuites: bookworm-security\nComponents: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        )
        (root / "etc/apt/apt.conf.d/docker-clean").write_text(
            'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };\n'
            'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";\n'
        )
        _slim(root)
        archive = Path(tmp) / "rootfs.tar"
        _say(progress, "packing the root file system")
        subprocess.run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(archive), "."], check=True)
        _say(progress, f"importing as {BASE_IMAGE}")
        # from a file, so the upload has a length (the engine rejects this one chunked)
        client.api.import_image_from_file(str(archive), repository="debian", tag="bookworm-slim",
                                          changes=['CMD ["bash"]'])
    return client.images.get(BASE_IMAGE).id


def _slim(root: Path) -> None:
    """Drop what the official slim image drops: debootstrap unpacks its first packages without
    dpkg, so the path-exclude rules above only cover what later installs bring."""
    for folder in ("usr/share/man", "usr/share/info", "usr/share/lintian", "var/lib/apt/lists",
                   "var/cache/apt/archives"):
        for path in (root / folder).glob("*"):
            if path.is_file() or path.is_symlink():
                path.unlink()
            elif path.is_dir() and path.name != "partial":
                shutil.rmtree(path)
    for path in (root / "usr/share/doc").glob("*/*"):
        if path.name != "copyright" and (path.is_file() or path.is_symlink()):
            path.unlink()
    for path in (root / "usr/share/locale").glob("*"):
        if path.name != "locale.alias":
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def _run_streaming(command: list[str], progress: Progress) -> None:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    for line in process.stdout:
        tail = (tail + [line.rstrip()])[-20:]
        _say(progress, line.rstrip())
    if process.wait() != 0:
        raise RuntimeError(f"{command[0]} failed:\n" + "\n".join(tail))


def build_context(name: str, ca_bundle: Path | None) -> io.BytesIO:
    """The folder ``images/<name>`` as a tar stream, with the extra CA bundle as certs/extra-ca.crt."""
    folder = IMAGES_DIR / name
    stream = io.BytesIO()
    with tarfile.open(fileobj=stream, mode="w") as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                tar.add(path, arcname=str(path.relative_to(folder)))
        data = ca_bundle.read_bytes() if ca_bundle else b""
        info = tarfile.TarInfo("certs/extra-ca.crt")
        info.size, info.mtime, info.mode = len(data), 0, 0o644  # fixed mtime keeps the cache warm
        tar.addfile(info, io.BytesIO(data))
    stream.seek(0)
    return stream


def build_image(client: docker.DockerClient, name: str, *, ca_bundle: Path | None = None,
                progress: Progress = None, tag: str | None = None) -> str:
    """Build ``images/<name>/Dockerfile`` and return the image id; raise ImageBuildError on failure."""
    if not (IMAGES_DIR / name / "Dockerfile").is_file():
        known = sorted(p.parent.name for p in IMAGES_DIR.glob("*/Dockerfile"))
        raise ValueError(f"no image called {name!r}; known images: {', '.join(known)}")
    tag = tag or f"tre/{name}:latest"
    buildargs = {k: v for k, v in os.environ.items() if k in PROXY_VARIABLES}
    log_path = LOG_DIR / f"tre-build-{name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    log: list[str] = []
    step = "the start"
    image_id = None
    for chunk in client.api.build(fileobj=build_context(name, ca_bundle), custom_context=True, tag=tag,
                                  rm=True, forcerm=True, decode=True, buildargs=buildargs,
                                  labels={**LABELS, "tre.image": name}):
        if "stream" in chunk:
            for line in chunk["stream"].splitlines():
                log.append(line)
                if line.startswith("Step "):
                    step = line
                _say(progress, line)
        if "aux" in chunk and "ID" in chunk["aux"]:
            image_id = chunk["aux"]["ID"]
        if "error" in chunk:
            log.append(chunk["error"])
            log_path.write_text("\n".join(log) + "\n")
            raise ImageBuildError(name, step, "\n".join(log[-15:]), log_path)
    if image_id is None:
        image_id = client.images.get(tag).id
    return image_id
