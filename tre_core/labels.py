"""The names the TRE gives what it creates in the container engine, spelled once.

Every container, service, network and image the TRE creates carries ``tre.managed=true``, its
installation (``tre.instance``) and what it is (``tre.component``), so that an installation finds
and cleans up its own objects by label and never another's. Project bridges are named after the
installation, so that the host firewall matches all of them and nothing else.
"""

from __future__ import annotations

import hashlib

PREFIX = "tre."
MANAGED = PREFIX + "managed"
INSTANCE = PREFIX + "instance"
COMPONENT = PREFIX + "component"
USER = PREFIX + "user"
PROJECT = PREFIX + "project"
DATASETS = PREFIX + "datasets"
EXTRACTS = PREFIX + "extracts"  # "slug:extract id,..." of what a workspace mounts at /data
IMAGE = PREFIX + "image"  # the images/ folder an image was built from
IMAGE_DIGEST = PREFIX + "image-digest"
BASE = PREFIX + "base"  # the image id an image was built FROM
WORKSPACE = "workspace"  # the component of a workspace container or service


def object_labels(instance: str, component: str, **extra: str) -> dict[str, str]:
    """The labels of one object of this installation; ``extra`` keys get the prefix too."""
    labels = {MANAGED: "true", INSTANCE: instance, COMPONENT: component}
    labels.update({f"{PREFIX}{key}": value for key, value in extra.items()})
    return labels


def is_managed(labels: dict[str, str] | None) -> bool:
    return (labels or {}).get(MANAGED) == "true"


def extracts_value(extracts: dict[str, int]) -> str:
    """The ``tre.extracts`` label of a workspace mounting these extracts (dataset slug -> id)."""
    return ",".join(f"{slug}:{extract_id}" for slug, extract_id in sorted(extracts.items()))


def parse_extracts(value: str | None) -> dict[str, int]:
    """The ``tre.extracts`` label read back: dataset slug -> extract id."""
    found = {}
    for part in filter(None, (value or "").split(",")):
        slug, _, extract_id = part.partition(":")
        if extract_id.isdigit():
            found[slug] = int(extract_id)
    return found


def workspaces_filter(instance: str) -> list[str]:
    """The engine's label filter that finds this installation's workspaces."""
    return [f"{INSTANCE}={instance}", f"{COMPONENT}={WORKSPACE}"]


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:6]


def bridge_prefix(instance: str) -> str:
    """``tre`` and six hex digits of the installation: every project bridge of it starts so."""
    return f"tre{_short_hash(instance)}"


def bridge_name(instance: str, project: str) -> str:
    return f"{bridge_prefix(instance)}{_short_hash(project)}"  # 15 characters, Linux's limit
