"""The package inventory of an analysis image, as a CycloneDX 1.5 software bill of materials.

Admins must know exactly what runs in a workspace, and no registry or scanner is reachable from an
enclave, so the inventory is read from the image itself: ``pip list --format=json`` of the
workspace's venv and ``dpkg-query -W`` of Debian's database, run in a throwaway container of the
built image with no network, labelled and removed whatever happens. Parsing is kept apart from
running so that it is tested on real output without an engine.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any
from urllib.parse import quote

import docker

from tre_core import labels as tre_labels

VENV_PIP = "/opt/tre-venv/bin/pip"
SEPARATOR = "----tre-sbom-dpkg----"
# The default format of dpkg-query -W, written out so that the output does not depend on it.
DPKG_FORMAT = "${binary:Package}\\t${Version}\\n"
INVENTORY_SCRIPT = (
    f"set -e; if [ -x {VENV_PIP} ]; then {VENV_PIP} list --format=json --disable-pip-version-check; "
    f"else echo '[]'; fi; echo '{SEPARATOR}'; dpkg-query -W -f='{DPKG_FORMAT}'"
)


class InventoryError(RuntimeError):
    """The image's package inventory could not be read: the image does not run a shell, or broke."""


def _normalise_pypi(name: str) -> str:
    """PyPI names as the purl specification writes them: lower case, runs of ``-_.`` as ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def python_components(pip_list_json: str) -> list[dict[str, Any]]:
    """Components from ``pip list --format=json`` (a JSON array of ``{"name", "version"}``)."""
    packages = json.loads(pip_list_json or "[]")
    return [
        {"type": "library", "name": p["name"], "version": p["version"],
         "purl": f"pkg:pypi/{_normalise_pypi(p['name'])}@{quote(p['version'], safe='.+!-')}"}
        for p in sorted(packages, key=lambda p: p["name"].lower())
    ]


def debian_components(dpkg_query_output: str) -> list[dict[str, Any]]:
    """Components from ``dpkg-query -W`` (``package[:arch]<TAB>version`` per line); a package
    listed without a version (known to dpkg but not installed) is left out."""
    components = []
    for line in dpkg_query_output.splitlines():
        package, _, version = line.strip().partition("\t")
        if not package or not version.strip():
            continue
        name, _, arch = package.partition(":")
        purl = f"pkg:deb/debian/{name}@{quote(version.strip(), safe='.+~-')}"
        if arch:
            purl += f"?arch={arch}"
        components.append({"type": "library", "name": name, "version": version.strip(), "purl": purl})
    return sorted(components, key=lambda c: c["name"])


def make_sbom(name: str, digest: str, pip_list_json: str, dpkg_query_output: str,
              timestamp: dt.datetime | None = None) -> dict[str, Any]:
    """A CycloneDX 1.5 document: the image as the described component, its packages as components."""
    when = (timestamp or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "timestamp": when,
            "component": {"type": "container", "name": name, "version": digest},
        },
        "components": python_components(pip_list_json) + debian_components(dpkg_query_output),
    }


def split_inventory(output: str) -> tuple[str, str]:
    """(pip list JSON, dpkg-query lines) from the throwaway container's output."""
    if SEPARATOR not in output:
        raise InventoryError(f"the image did not print its package lists; its output was: {output[-500:]!r}")
    pip_part, _, dpkg_part = output.partition(SEPARATOR)
    return pip_part.strip() or "[]", dpkg_part.strip("\n")


def read_inventory(client: docker.DockerClient, image_id: str, name: str, *,
                   labels: dict[str, str] | None = None, timeout: float = 120) -> dict[str, Any]:
    """Run the inventory script in a container of ``image_id`` (no network, read-only, labelled)
    and return the SBOM; the container is removed whatever happens."""
    container = client.containers.create(
        image_id, entrypoint=["/bin/sh", "-c"], command=[INVENTORY_SCRIPT], network_disabled=True,
        read_only=True, labels={tre_labels.MANAGED: "true", tre_labels.COMPONENT: "sbom", **(labels or {})},
    )
    try:
        container.start()
        result = container.wait(timeout=timeout)
        output = container.logs(stdout=True, stderr=False).decode("utf-8", "replace")
        if result.get("StatusCode") != 0:
            errors = container.logs(stdout=False, stderr=True).decode("utf-8", "replace")
            raise InventoryError(f"listing the packages of {name} failed (exit {result.get('StatusCode')}): "
                                 f"{errors[-500:]}")
    finally:
        container.remove(force=True)
    pip_json, dpkg_lines = split_inventory(output)
    return make_sbom(name, image_id, pip_json, dpkg_lines)


def count_by_ecosystem(sbom: dict[str, Any]) -> dict[str, int]:
    """How many Python and Debian packages an SBOM lists, for listings."""
    counts = {"python": 0, "debian": 0}
    for component in sbom.get("components", []):
        purl = component.get("purl", "")
        if purl.startswith("pkg:pypi/"):
            counts["python"] += 1
        elif purl.startswith("pkg:deb/"):
            counts["debian"] += 1
    return counts
