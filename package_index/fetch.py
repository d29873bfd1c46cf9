"""Fetch approved distributions on the host, from the upstream index, for the images' platform.

The singleuser image is Debian bookworm (glibc 2.36) with its Python 3.11 on x86_64, so pip
resolves for exactly that (``--python-version 3.11 --platform manylinux_2_36_x86_64 ...``),
binaries only: the TRE builds nothing from source, since a build runs the package's own code on
the host. Resolution and download run in ``pip --isolated`` (no pip.conf, no PIP_* variables: the
upstream given is the only index), through the platform's proxy (HTTPS_PROXY, as pip reads it)
and trusting ``TRE_EXTRA_CA_BUNDLE``. Each file is checked against the sha256 the index published
before anything is served (``store.IndexStore.publish``).

When pip finds nothing, the upstream's simple page says why, in words an admin can act on:
unknown name, no such version, or no wheel for the platform.
"""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import Version

from package_index.store import Artifact

PYTHON_VERSION = "3.11"
ABI = "cp311"
GLIBC_MINOR = 36  # Debian bookworm, the singleuser image's base
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(GLIBC_MINOR, 4, -1)] + [
    "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
PLATFORM_TEXT = f"CPython {PYTHON_VERSION} on Linux x86_64 (glibc 2.{GLIBC_MINOR})"


class FetchError(RuntimeError):
    """Why a package cannot be brought in; nothing was published."""


@dataclass(frozen=True)
class Item:
    name: str
    version: str
    filename: str
    url: str
    sha256: str
    licence: str
    size: int | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Fetched:
    items: list[Item]
    folder: Path  # temporary; the caller removes it
    artifacts: list[Artifact] = field(default_factory=list)


def _pip_target_args(upstream: str, ca_bundle: str | None) -> list[str]:
    args = ["--isolated", "--disable-pip-version-check", "--no-input", "--no-cache-dir", "--index-url", upstream,
            "--only-binary", ":all:", "--python-version", PYTHON_VERSION, "--implementation", "cp",
            "--abi", ABI, "--abi", "abi3", "--abi", "none"]
    for platform in PLATFORMS:
        args += ["--platform", platform]
    if ca_bundle:
        args += ["--cert", ca_bundle]
    return args


def _licence(metadata: dict) -> str:
    expression = metadata.get("license_expression")
    if expression:
        return expression
    classifiers = [c.split(" :: ")[-1] for c in metadata.get("classifier", []) if c.startswith("License ::")]
    if classifiers:
        return ", ".join(classifiers)
    text = (metadata.get("license") or "").strip().splitlines()
    return text[0][:80] if text else "not stated"


def _run_pip(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=900)


def resolve(requirements: list[str], upstream: str, ca_bundle: str | None = None) -> list[Item]:
    """The closure pip would install for ``requirements`` on the images' platform."""
    with tempfile.TemporaryDirectory(prefix="tre-resolve-") as tmp:
        report = Path(tmp) / "report.json"
        result = _run_pip(["install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report),
                           *_pip_target_args(upstream, ca_bundle), *requirements])
        if result.returncode != 0:
            raise FetchError(explain_failure(requirements, upstream, ca_bundle, result.stderr))
        installs = json.loads(report.read_text())["install"]
    items = []
    for entry in installs:
        info, metadata = entry["download_info"], entry["metadata"]
        hashes = info.get("archive_info", {}).get("hashes", {})
        if "sha256" not in hashes:
            raise FetchError(f"The upstream index published no sha256 for {info['url']}; the TRE serves only "
                             "files pinned by sha256. Use an index that publishes hashes (PyPI does).")
        items.append(Item(canonicalize_name(metadata["name"]), metadata["version"],
                          info["url"].rsplit("/", 1)[-1].split("#")[0], info["url"], hashes["sha256"],
                          _licence(metadata), _size(info["url"], ca_bundle)))
    return items


def _size(url: str, ca_bundle: str | None) -> int | None:
    """The file's size as the upstream announces it (for the admin's review); None if it does not."""
    context = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url.split("#")[0], method="HEAD"), timeout=30,
                                    context=context) as response:
            length = response.headers.get("Content-Length")
            return int(length) if length and length.isdigit() else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def download(items: list[Item], upstream: str, ca_bundle: str | None = None) -> Fetched:
    """Download exactly ``items`` (no resolution of their own) into a temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="tre-fetch-"))
    pinned = [f"{i.name}=={i.version}" for i in items]
    result = _run_pip(["download", "--no-deps", "--dest", str(folder), *_pip_target_args(upstream, ca_bundle),
                       *pinned])
    if result.returncode != 0:
        raise FetchError(f"Downloading from {upstream} failed: {_last_error(result.stderr)}")
    fetched = Fetched([], folder)
    for item in items:
        path = folder / item.filename
        if not path.is_file():
            raise FetchError(f"{item.filename} was not downloaded (the upstream index changed between the "
                             "review and the approval?); look at the request again and re-approve it.")
        fetched.items.append(Item(**{**item.as_dict(), "size": path.stat().st_size}))
        fetched.artifacts.append(Artifact(path, item.sha256))
    return fetched


def _last_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["no message from pip"])[-1]


def _simple_page(upstream: str, name: str, ca_bundle: str | None) -> str | None:
    """The upstream's PEP 503 page for ``name``; None if it has no such project."""
    context = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else None
    url = f"{upstream.rstrip('/')}/{canonicalize_name(name)}/"
    try:
        with urllib.request.urlopen(url, timeout=30, context=context) as response:
            return response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise FetchError(f"The upstream index {upstream} answered {error.code} for {name}; try again later.") from None
    except (urllib.error.URLError, OSError) as error:
        raise FetchError(f"The upstream index {upstream} cannot be reached ({getattr(error, 'reason', error)}); "
                         "check the platform's proxy and TRE_PACKAGE_UPSTREAM_URL, then try again.") from None


def explain_failure(requirements: list[str], upstream: str, ca_bundle: str | None, stderr: str) -> str:
    """Turn pip's "no matching distribution" into the reason an admin can act on."""
    if "DO NOT MATCH THE HASHES" in stderr:
        got = re.findall(r"Got\s+([0-9a-f]{64})", stderr)
        return (f"A file of {' '.join(requirements)} from {upstream} does not have the sha256 the index "
                f"published (got {', '.join(got) or 'another'}): it was changed on the way or upstream. Nothing "
                "was published; try again, and if it happens again, tell the security team.")
    for requirement in requirements:
        name = re.split(r"[<>=!~ \[;@]", requirement, maxsplit=1)[0]
        page = _simple_page(upstream, name, ca_bundle)
        if page is None:
            return f"No package named {name} on {upstream}: check the spelling (the name as on PyPI)."
        files = re.findall(r">\s*([^<>\s]+\.(?:whl|tar\.gz|zip))\s*<", page)
        versions: dict[str, list[str]] = {}
        for filename in files:
            try:
                version = str(parse_wheel_filename(filename)[1] if filename.endswith(".whl")
                              else parse_sdist_filename(filename)[1])
            except ValueError:
                continue
            versions.setdefault(version, []).append(filename)
        wanted = Requirement(requirement)
        matching = [v for v in versions if wanted.specifier.contains(v, prereleases=True)]
        if not matching:
            newest = sorted(versions, key=Version)[-3:]
            return (f"{name} has no version {wanted.specifier} on {upstream} (newest: {', '.join(newest) or 'none'}); "
                    "ask for a version that exists.")
    return (f"No wheel for {PLATFORM_TEXT} of {' '.join(requirements)} (or of one of its dependencies) on "
            f"{upstream}, and the TRE does not build packages from source: ask for a version that ships a "
            f"wheel. pip said: {_last_error(stderr)}")
