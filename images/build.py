"""Builds the analysis images with the Docker SDK, on a laptop online or in a closed hospital network.

The base is ``debian:bookworm-slim``: reused when present, pulled where a registry answers, otherwise
made here with debootstrap from the host's Debian mirror, slimmed the way the official image is, and
imported under that same name, so one set of Dockerfiles serves every site. Builds use Docker's
legacy builder with an in-memory context that carries the extra CA certificates (a TLS proxy's) as
``certs/extra-ca.crt``; unchanged inputs hit the build cache and take seconds.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import requests
from docker.errors import APIError, ImageNotFound

from tre_core import labels as tre_labels

IMAGES_DIR = Path(__file__).resolve().parent
BASE_REPOSITORY, BASE_TAG = "debian", "bookworm-slim"
BASE_IMAGE = f"{BASE_REPOSITORY}:{BASE_TAG}"
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
EXTRA_CA_IN_CONTEXT = "certs/extra-ca.crt"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY",
                   "http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "all_proxy")
LOG_TAIL_LINES = 25
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # the engine colours the RUN steps' stderr

Progress = Callable[[str], None] | None

# The official slim image's dpkg filter (debuerreotype's slimify list): documentation, manual pages
# and translations never land, only the copyright files the licences ask to keep.
SLIM_EXCLUDES = (
    "/usr/share/doc/*", "/usr/share/groff/*", "/usr/share/info/*", "/usr/share/linda/*",
    "/usr/share/lintian/overrides/*", "/usr/share/locale/*", "/usr/share/man/*",
)
SLIM_INCLUDES = ("/usr/share/doc/*/copyright",)
DPKG_SLIM_CONFIG = (
    "# The \"slim\" variant, as in the official debian image: files containers never need are\n"
    "# excluded, and this configuration keeps them out of later installs too.\n"
    + "".join(f"path-exclude {p}\n" for p in SLIM_EXCLUDES)
    + "".join(f"path-include {p}\n" for p in SLIM_INCLUDES)
)
APT_CLEAN = '"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true";'
# What the official image adds to a minbase debootstrap (debuerreotype-minimizing-config).
MINIMIZING_CONFIG = {
    "etc/apt/apt.conf.d/docker-clean": (
        f"DPkg::Post-Invoke {{ {APT_CLEAN} }};\nAPT::Update::Post-Invoke {{ {APT_CLEAN} }};\n"
        'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n'
    ),
    "etc/apt/apt.conf.d/docker-no-languages": 'Acquire::Languages "none";\n',
    "etc/apt/apt.conf.d/docker-gzip-indexes": (
        'Acquire::GzipIndexes "true";\nAcquire::CompressionTypes::Order:: "gz";\n'
    ),
    "etc/apt/apt.conf.d/docker-autoremove-suggests": 'Apt::AutoRemove::SuggestsImportant "false";\n',
    "etc/dpkg/dpkg.cfg.d/docker-apt-speedup": "force-unsafe-io\n",
    "etc/dpkg/dpkg.cfg.d/docker": DPKG_SLIM_CONFIG,
}
POLICY_RC_D = "#!/bin/sh\n# Services never start during an image build.\nexit 101\n"


class ImageBuildError(RuntimeError):
    """A Dockerfile step failed: which one, the end of its output, and where the whole log is."""

    def __init__(self, name: str, step: str, log_tail: str, log_path: Path | None = None) -> None:
        self.name, self.step, self.log_tail, self.log_path = name, step, log_tail, log_path
        where = f"\nFull log: {log_path}." if log_path else ""
        super().__init__(
            f"The {name} image did not build: {step} failed.\n{log_tail}{where}\n"
            f"Nothing was tagged. Fix images/{name} (or the network, if a download failed) and build again."
        )


def _say(progress: Progress, line: str) -> None:
    if progress:
        progress(line)


def default_ca_bundle() -> Path | None:
    """The extra CA certificates a build should trust: ``TRE_EXTRA_CA_BUNDLE`` if set, else the
    host's bundle (which holds a TLS-intercepting proxy's CA when the host trusts one)."""
    configured = os.environ.get("TRE_EXTRA_CA_BUNDLE")
    if configured:
        return Path(configured)
    return HOST_CA_BUNDLE if HOST_CA_BUNDLE.is_file() else None


# --- the base image ---------------------------------------------------------------------------


def ensure_base_image(client: docker.DockerClient, *, progress: Progress = None) -> str:
    """The id of ``debian:bookworm-slim``: already here, pulled, or built with debootstrap."""
    try:
        return client.images.get(BASE_IMAGE).id
    except ImageNotFound:
        pass
    _say(progress, f"pulling {BASE_IMAGE}")
    try:
        for event in client.api.pull(BASE_REPOSITORY, tag=BASE_TAG, stream=True, decode=True):
            if "error" in event:
                raise APIError(event["error"])
            _say(progress, " ".join(str(event[k]) for k in ("id", "status", "progress") if event.get(k)))
        return client.images.get(BASE_IMAGE).id
    except (APIError, requests.RequestException) as exc:
        reason = getattr(exc, "explanation", None) or str(exc)
        _say(progress, f"no registry answers ({reason}); making {BASE_IMAGE} with debootstrap")
    return debootstrap_base_image(client, progress=progress)


def apt_mirrors(sources_dir: Path = Path("/etc/apt")) -> tuple[str, str]:
    """(Debian mirror, security mirror) the host's apt uses, so a closed network's mirror works
    unchanged; deb.debian.org when the host is not a Debian with such sources."""
    entries: list[tuple[str, list[str]]] = []  # (uri, suites)
    files = sorted((sources_dir / "sources.list.d").glob("*.sources")) + sorted(
        (sources_dir / "sources.list.d").glob("*.list")) + [sources_dir / "sources.list"]
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.MULTILINE))
                if "deb" in fields.get("Types", "").split() and fields.get("Enabled", "yes") != "no":
                    entries += [(uri, fields.get("Suites", "").split()) for uri in fields.get("URIs", "").split()]
        else:
            for match in re.finditer(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", text, re.MULTILINE):
                entries.append((match.group(1), [match.group(2)]))
    mirror = next((uri for uri, suites in entries if SUITE in suites), DEFAULT_MIRROR).rstrip("/")
    security = next((uri for uri, suites in entries if f"{SUITE}-security" in suites), None)
    if security is None:
        security = re.sub(r"/debian$", "/debian-security", mirror) if mirror.endswith("/debian") \
            else "http://deb.debian.org/debian-security"
    return mirror, security.rstrip("/")


def debootstrap_base_image(client: docker.DockerClient, *, progress: Progress = None,
                           repository: str = BASE_REPOSITORY, tag: str = BASE_TAG) -> str:
    """Make the slim Debian base with ``debootstrap --variant=minbase`` and import it; needs root."""
    if shutil.which("debootstrap") is None:
        raise RuntimeError(
            f"{BASE_IMAGE} is not here, no registry answers, and debootstrap is not installed; "
            "install it (apt-get install debootstrap) or load the image with docker load."
        )
    mirror, security = apt_mirrors()
    with tempfile.TemporaryDirectory(prefix="tre-base-") as tmp:
        root = Path(tmp) / "rootfs"
        # Written before debootstrap so the packages its second stage installs with dpkg obey it.
        _write(root / "etc/dpkg/dpkg.cfg.d/docker", DPKG_SLIM_CONFIG)
        _say(progress, f"debootstrap {SUITE} from {mirror}")
        _run_streaming(["debootstrap", "--variant=minbase", SUITE, str(root), mirror], progress)
        for relative, text in MINIMIZING_CONFIG.items():
            _write(root / relative, text)
        _write(root / "usr/sbin/policy-rc.d", POLICY_RC_D, mode=0o755)
        # debootstrap copied these from this host; Docker provides its own in every container
        (root / "etc/resolv.conf").unlink(missing_ok=True)
        _write(root / "etc/hostname", "localhost\n")
        (root / "etc/apt/sources.list").unlink(missing_ok=True)
        _write(root / "etc/apt/sources.list.d/debian.sources",
               f"Types: deb\nURIs: {mirror}\nSuites: {SUITE} {SUITE}-updates\nComponents: main\n"
               "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
               f"Types: deb\nURIs: {security}\nSuites: {SUITE}-security\nComponents: main\n"
               "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
        subprocess.run(["chroot", str(root), "apt-get", "clean"], check=True)
        _slim(root)
        _say(progress, f"importing the root file system as {repository}:{tag}")
        # A tar stream straight from tar's stdout; the engine reads it as a chunked upload.
        tar = subprocess.Popen(
            ["tar", "--numeric-owner", "--xattrs", "-C", str(root), "-c",
             "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*", "--exclude=./run/*", "."],
            stdout=subprocess.PIPE,
        )
        try:
            reply = str(client.api.import_image(src=tar.stdout, repository=repository, tag=tag,
                                                changes=['CMD ["bash"]'], stream_src=True))
        finally:
            tar.stdout.close()
            tar_status = tar.wait()
    if tar_status != 0 or '"error' in reply:
        raise RuntimeError(f"importing the debootstrapped root file system failed (tar exit {tar_status}): {reply}")
    _say(progress, reply.strip())
    return client.images.get(f"{repository}:{tag}").id


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _slim(root: Path) -> None:
    """Delete what the slim dpkg filter excludes: debootstrap's first stage unpacks the essential
    packages without dpkg, so the filter alone leaves their documentation behind. Also drop apt
    lists, caches and the logs of the bootstrap, as the official image does."""
    for top in {p.split("*")[0].rstrip("/") for p in SLIM_EXCLUDES}:
        base = root / top.lstrip("/")
        if not base.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(base, topdown=False):
            for name in filenames + [d for d in dirnames if (Path(dirpath) / d).is_symlink()]:
                path = Path(dirpath) / name
                inside = "/" + str(path.relative_to(root))
                if any(fnmatch.fnmatch(inside, p) for p in SLIM_EXCLUDES) and not any(
                        fnmatch.fnmatch(inside, p) for p in SLIM_INCLUDES):
                    path.unlink()
            if Path(dirpath) != base and not any(Path(dirpath).iterdir()):
                Path(dirpath).rmdir()
    for pattern in ("var/lib/apt/lists/*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb",
                    "var/cache/debconf/*-old", "var/lib/dpkg/*-old", "var/log/*.log", "var/log/apt/*",
                    "var/cache/ldconfig/aux-cache"):
        for path in root.glob(pattern):
            if path.is_file() or path.is_symlink():
                path.unlink()


def _run_streaming(command: list[str], progress: Progress) -> None:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        tail = (tail + [line.rstrip()])[-LOG_TAIL_LINES:]
        _say(progress, line.rstrip())
    if process.wait() != 0:
        raise RuntimeError(f"{command[0]} failed (exit {process.returncode}):\n" + "\n".join(tail))


# --- analysis images --------------------------------------------------------------------------


def images_dir() -> Path:
    """Where the image folders are: this package's, or a site's own (``TRE_IMAGES_DIR``) laid out
    the same way."""
    return Path(os.environ.get("TRE_IMAGES_DIR") or IMAGES_DIR)


def known_images() -> list[str]:
    """Every image name ``tre images build`` accepts: folders with a Dockerfile, and project
    folders (``projects/<name>``) with a requirements.txt built by the generic project Dockerfile."""
    root = images_dir()
    own = [p.parent.name for p in root.glob("*/Dockerfile") if p.parent.name != "projects"]
    projects = [f"projects/{p.parent.name}" for p in (root / "projects").glob("*/requirements.txt")]
    return sorted(own) + sorted(projects)


def dockerfile_path(name: str) -> Path:
    """The Dockerfile ``name`` builds from: its own, or the generic one of project images."""
    if name not in known_images():
        raise ValueError(f"There is no image called {name!r} under {images_dir()}; known images: "
                         f"{', '.join(known_images())}. A project image is a folder images/projects/<name>/ "
                         "with a requirements.txt (see images/README.md).")
    own = images_dir() / name / "Dockerfile"
    return own if own.is_file() else images_dir() / "projects" / "Dockerfile"


def shared_sources(name: str) -> dict[str, Path]:
    """Folders of the repository an image's context carries besides its own folder (context path
    -> source): the singleuser image ships the egress review's checks, taken from the package
    itself at each build, so that a researcher's ``tre check`` runs the very rules the checkers'
    service runs and no copy can drift."""
    if name != "singleuser":
        return {}
    spec = importlib.util.find_spec("egress_review.checks")
    if spec is None or not spec.submodule_search_locations:
        raise ImageBuildError(name, "collecting its build context",
                              "The egress review's checks package (egress_review.checks) is not installed; "
                              "run ./setup.sh, which installs the project.")
    checks = Path(spec.submodule_search_locations[0])
    # and the catalogue of their French words (egress_review/checks/i18n.py reads it there)
    return {"tre_check/egress_review/checks": checks,
            "tre_check/egress_review/locale": checks.parents[1] / "tre_core" / "locale"}


def build_context(name: str, ca_bundle: Path | None) -> io.BytesIO:
    """``images/<name>`` as an in-memory tar, plus the CA bundle as ``certs/extra-ca.crt`` (empty
    when there is none, so the Dockerfile's COPY always has a source). A project folder without a
    Dockerfile gets the generic project one."""
    folder = images_dir() / name
    dockerfile = dockerfile_path(name)
    stream = io.BytesIO()

    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if "__pycache__" in info.name or info.name.endswith(".pyc"):
            return None
        if any(part in ("node_modules", ".yarn") for part in info.name.split("/")) or \
                info.name.startswith("labextension/build/"):
            return None  # a JupyterLab extension built here by hand: the image builds its own
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = 0  # a reproducible context; the cache itself keys on content
        return info

    with tarfile.open(fileobj=stream, mode="w") as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=str(path.relative_to(folder)), filter=normalise)
        if dockerfile.parent != folder:
            tar.add(dockerfile, arcname="Dockerfile", filter=normalise)
        for target, source in shared_sources(name).items():
            for path in sorted(p for p in source.rglob("*") if p.suffix in (".py", ".po")):
                tar.add(path, arcname=f"{target}/{path.relative_to(source)}", filter=normalise)
        data = ca_bundle.read_bytes() if ca_bundle else b""
        info = tarfile.TarInfo(EXTRA_CA_IN_CONTEXT)
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
    stream.seek(0)
    return stream


def build_image(client: docker.DockerClient, name: str, *, ca_bundle: Path | None,
                progress: Progress = None, tag: str | None = None, no_cache: bool = False,
                build_args: dict[str, str] | None = None, log_dir: Path | None = None) -> str:
    """Build ``images/<name>`` (see :func:`dockerfile_path`), tag it (``tre/<name>:latest`` by
    default) and return its id. Every output line goes to ``progress`` and to a log file in
    ``log_dir``, deleted after a success and kept after a failure; a failed step raises
    :class:`ImageBuildError`. ``build_args`` are the Dockerfile's ARGs (e.g. ``BASE``);
    ``no_cache`` rebuilds every step (for timing a cold build)."""
    dockerfile_path(name)  # an unknown name fails here, before anything is sent to the engine
    if ca_bundle is not None and not Path(ca_bundle).is_file():
        raise FileNotFoundError(
            f"CA bundle {ca_bundle} does not exist; set TRE_EXTRA_CA_BUNDLE to a PEM file or unset it."
        )
    tag = tag or f"tre/{name}:latest"
    log_dir = log_dir or Path(os.environ.get("TRE_BUILD_LOG_DIR", tempfile.gettempdir()))
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"tre-build-{name.replace('/', '-')}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    tail: list[str] = []
    step = "sending the build context"
    image_id = None
    with log_path.open("w", encoding="utf-8") as log:
        def record(line: str) -> None:
            nonlocal step, tail
            line = ANSI_ESCAPE.sub("", line).rstrip()
            if not line:
                return
            if line.startswith("Step "):
                step, tail = line, []  # the tail shown on failure is the failing step's own output
            tail = (tail + [line])[-LOG_TAIL_LINES:]
            log.write(line + "\n")
            log.flush()
            _say(progress, line)

        try:
            for chunk in _build_stream(client, name, ca_bundle, tag, no_cache, build_args or {}):
                for line in chunk.get("stream", "").splitlines():
                    record(line)
                if chunk.get("aux", {}).get("ID"):
                    image_id = chunk["aux"]["ID"]
                if "error" in chunk or "errorDetail" in chunk:
                    record(chunk.get("error") or chunk["errorDetail"].get("message", ""))
                    raise ImageBuildError(name, step, "\n".join(tail), log_path)
        except (APIError, requests.RequestException) as exc:
            record(f"Docker engine error: {exc}")
            raise ImageBuildError(name, step, "\n".join(tail), log_path) from exc
    log_path.unlink(missing_ok=True)  # kept only when there is a failure to read
    return image_id or client.images.get(tag).id


def _build_stream(client: docker.DockerClient, name: str, ca_bundle: Path | None, tag: str,
                  no_cache: bool, build_args: dict[str, str]) -> Iterator[dict]:
    return client.api.build(
        fileobj=build_context(name, ca_bundle), custom_context=True,
        tag=tag, decode=True, rm=True, forcerm=True, pull=False, nocache=no_cache,
        labels={tre_labels.MANAGED: "true", tre_labels.IMAGE: name,
                **({tre_labels.BASE: build_args["BASE"]} if build_args.get("BASE") else {})},
        # predefined proxy arguments: used by RUN steps, kept out of the image and its history
        buildargs={**{k: v for k in PROXY_VARIABLES if (v := os.environ.get(k))}, **build_args},
    )
