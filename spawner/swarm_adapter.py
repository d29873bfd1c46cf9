"""A WorkspacePlan rendered as a Docker Swarm service: pure functions, docker SDK types, no I/O
except ``ensure_overlay_network``, which applies the one object a service needs before it exists.

The service carries the same walls as the single-host container (``docker_adapter``) wherever
the Swarm API of Docker 20.10 (API 1.41) can say them:

- the project's extracts bind-mounted read-only at ``/data/<slug>``, ``/project`` and the home read-write;
- user 1000:100, read-only root file system, a tmpfs ``/tmp``, every capability dropped, an init;
- memory, CPU and process-count limits; no restart (a stopped workspace stays stopped);
- one internal, attachable overlay network per project: no route out, nothing of other projects,
  encrypted between nodes (IPsec) unless the site says otherwise;
- placement constraints, one per dataset, ``node.labels.tre.dataset.<slug>==<version>``: the task
  lands only on a node that holds the extracts of every dataset version it mounts, or on none.

What a service cannot ask for on Docker 20.10, and what covers it instead:

- ``no-new-privileges`` (``security_opt``; a service's spec has no field for it in API 1.41):
  each node's engine runs with ``dockerd --no-new-privileges``, which sets it on every container
  of that node, so the image's setuid programs (``su``, ``passwd``) give no privilege; the attack
  suite's ``setuid-binaries`` check proves it in the workspace;
- ``memswap_limit`` (no swap beyond the memory limit): nodes run without swap;
- the tmpfs mount options: a service's tmpfs takes only a size and a mode; the engine mounts it
  ``nosuid,nodev,noexec``, stricter than the single host's ``/tmp`` (no programs run from it);
- the host firewall of the single-host set-up (``hub.firewall``) has no counterpart: an
  internal overlay network has no gateway interface on any host, so there is nothing to filter.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import docker
from docker.errors import APIError, NotFound
from docker.types import DNSConfig, Mount, Resources, RestartPolicy

from spawner.plan import NetworkPlan, WorkspacePlan
from tre_core import labels as tre_labels

# What a node label (and a constraint's value) may hold: Swarm splits constraints on operators
# and trims spaces, so anything else would change the meaning of the expression.
_LABEL_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SIZE = re.compile(r"^(\d+)([kmgt]?)b?$", re.IGNORECASE)
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


class UnplaceableDataset(ValueError):
    """A dataset slug or version that cannot be written as a node label constraint."""


@dataclass(frozen=True)
class SwarmSite:
    """How an installation lays out its swarm; the plan says nothing engine-specific.

    ``dataset_label_prefix``: node labels a data steward sets on each node holding a dataset,
    ``<prefix><slug>=<version>`` (``docker node update --label-add tre.dataset.claims=2024.1 n2``).
    ``extra_constraints``: added to every workspace (for example ``node.role==worker`` to keep
    workspaces off the managers that run the hub). ``encrypted_network``: overlay traffic between
    nodes in IPsec (``--opt encrypted``); health data should not cross a wire in the clear.
    """

    dataset_label_prefix: str = "tre.dataset."
    extra_constraints: tuple[str, ...] = ()
    encrypted_network: bool = True


def dataset_constraints(plan: WorkspacePlan, site: SwarmSite) -> list[str]:
    """One constraint per mounted dataset: a node qualifies only if it holds every one of them,
    at the version the catalogue grants (a node still holding last year's extract does not)."""
    constraints = []
    for slug, version in plan.dataset_versions:
        for part in (slug, version):
            if not _LABEL_PART.match(part):
                raise UnplaceableDataset(
                    f"dataset {slug!r} version {version!r} cannot be a node label; a data steward "
                    "renames it with letters, digits, '.', '_' or '-' only")
        constraints.append(f"node.labels.{site.dataset_label_prefix}{slug}=={version}")
    return constraints


def placement(plan: WorkspacePlan, site: SwarmSite) -> dict[str, Any]:
    """SwarmSpawner's ``extra_placement_spec``."""
    return {"constraints": dataset_constraints(plan, site) + list(site.extra_constraints)}


def _bytes(size: str) -> int:
    match = _SIZE.match(size.strip())
    if not match:
        raise ValueError(f"size {size!r} is not a number of bytes with an optional k, m, g or t")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def _tmpfs_size(options: str) -> int | None:
    for option in options.split(","):
        if option.startswith("size="):
            return _bytes(option.removeprefix("size="))
    return None


def mounts(plan: WorkspacePlan) -> list[Mount]:
    """Bind mounts of the plan (datasets read-only) and its tmpfs folders. Bind sources are paths
    on the node running the task: the datasets on the nodes labelled for them, the workspaces
    folder on storage every node mounts at the same path."""
    binds = [Mount(target=str(m.target), source=str(m.source), type="bind", read_only=m.read_only)
             for m in plan.mounts]
    tmpfs = [Mount(target=target, source=None, type="tmpfs", tmpfs_size=_tmpfs_size(options), tmpfs_mode=0o1777)
             for target, options in plan.hardening.tmpfs]
    return binds + tmpfs


def container_spec(plan: WorkspacePlan, nameserver: str) -> dict[str, Any]:
    """SwarmSpawner's ``extra_container_spec`` (keyword arguments of ``ContainerSpec``).

    ``nameserver``: where Docker's embedded DNS forwards the names it does not know. The project
    network's gateway address, which on an internal overlay network is no machine at all, so the
    query dies in the workspace's own namespace; left empty, Docker 20.10 would forward from the
    node's namespace when the node's resolver is a loopback address (CVE-2024-29018)."""
    hardening = plan.hardening
    return {
        "user": f"{plan.uid}:{plan.gid}",
        "workdir": str(plan.working_dir),
        "hostname": plan.project,
        "labels": dict(plan.labels),
        "mounts": mounts(plan),
        "read_only": hardening.read_only_root,
        "cap_drop": list(hardening.drop_capabilities),
        "init": True,
        "dns_config": DNSConfig(nameservers=[nameserver], options=["timeout:1", "attempts:1"]),
    }


def resources(plan: WorkspacePlan) -> Resources:
    """The task's limits. The SDK's ``Resources`` knows no pids limit, which API 1.41 (Docker
    20.10) accepts as ``Limits.Pids``: it is added to the request as is."""
    spec = Resources(cpu_limit=int(plan.cpu_limit * 1e9), mem_limit=_bytes(plan.mem_limit))
    spec["Limits"]["Pids"] = plan.hardening.pids_limit
    return spec


def task_spec(plan: WorkspacePlan) -> dict[str, Any]:
    """SwarmSpawner's ``extra_task_spec``: limits (overriding the spawner's own, which cannot
    hold a pids limit), and no restart: a workspace that stops is stopped, not started again by
    the swarm behind the hub's back, perhaps on another node."""
    return {"resources": resources(plan), "restart_policy": RestartPolicy(condition="none")}


def overlay_network_options(network: NetworkPlan, site: SwarmSite) -> dict[str, Any]:
    """Keyword arguments of ``APIClient.create_network`` for the project's overlay network:
    internal (no route out of the swarm), attachable (the hub's container joins it to reach the
    workspaces), encrypted between nodes if the site asks."""
    return {
        "driver": "overlay",
        "internal": network.internal,
        "attachable": True,
        "scope": "swarm",
        "labels": dict(network.labels),
        "options": {"encrypted": "true"} if site.encrypted_network else {},
        "check_duplicate": True,
    }


def endpoint_spec() -> dict[str, Any]:
    """SwarmSpawner's ``extra_endpoint_spec``: the service's name resolves to its one task (DNS
    round robin) rather than to a virtual IP, and no port is published on the nodes. A virtual IP
    balances nothing for one task and needs IPVS in every container that calls it (the hub's)."""
    return {"mode": "dnsrr"}


@dataclass(frozen=True)
class ServiceParameters:
    """Every SwarmSpawner trait the plan decides, in one value the spawner applies."""

    name: str
    image: str
    network: str
    environment: dict[str, str]
    container: dict[str, Any]
    task: dict[str, Any]
    placement: dict[str, Any]
    endpoint: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


def service_parameters(plan: WorkspacePlan, site: SwarmSite, nameserver: str) -> ServiceParameters:
    return ServiceParameters(
        name=plan.container_name,
        image=plan.image,
        network=plan.network.name,
        environment=dict(plan.env),
        container=container_spec(plan, nameserver),
        task=task_spec(plan),
        placement=placement(plan, site),
        endpoint=endpoint_spec(),
        labels=dict(plan.labels),
    )


def ensure_overlay_network(client: docker.APIClient, network: NetworkPlan, site: SwarmSite) -> str:
    """Create the project's overlay network on the swarm manager if missing; return its gateway
    address (the nameserver that answers nothing, see ``container_spec``). A network of that name
    made another way is refused rather than trusted."""
    try:
        info = client.inspect_network(network.name)
    except NotFound:
        try:
            client.create_network(network.name, **overlay_network_options(network, site))
        except APIError as exc:
            if exc.status_code != 409:  # another spawn of the same project created it first
                raise
        info = client.inspect_network(network.name)
    info = _allocated(client, network.name, info)
    problems = []
    if not tre_labels.is_managed(info.get("Labels")):
        problems.append(f"not labelled {tre_labels.MANAGED}=true")
    if info.get("Driver") != "overlay" or bool(info.get("Internal")) != network.internal:
        problems.append(f"driver {info.get('Driver')}, internal {info.get('Internal')}")
    if site.encrypted_network and "encrypted" not in (info.get("Options") or {}):
        problems.append("not encrypted between nodes")
    if problems:
        raise RuntimeError(
            f"Docker network {network.name} is not the one the TRE makes ({'; '.join(problems)}); "
            "an administrator removes it (docker network rm), then the workspace can start.")
    return info["IPAM"]["Config"][0]["Gateway"].split("/")[0]


def _allocated(client: docker.APIClient, name: str, info: dict, timeout: float = 30) -> dict:
    """The network once the swarm's allocator has given it its driver and subnet: a manager
    answers for a network it has just created before that, with both still empty."""
    deadline = time.monotonic() + timeout
    while not (info.get("Driver") and (info.get("IPAM") or {}).get("Config")) and time.monotonic() < deadline:
        time.sleep(0.5)
        info = client.inspect_network(name)
    return info


def remove_overlay_network_if_unused(client: docker.APIClient, name: str) -> bool:
    """Remove a project's overlay network once no service uses it. A manager sees only its own
    node's containers on an overlay network, so the swarm's refusal (the network is in use by a
    service or a task still shutting down) is the answer: then it stays, for the next stop."""
    try:
        client.remove_network(name)
        return True
    except NotFound:
        return False
    except APIError as exc:
        if "in use" in str(exc) or exc.status_code in (403, 409):
            return False
        raise
