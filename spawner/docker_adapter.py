"""Applies a WorkspacePlan to a Docker engine: the only module here that knows Docker's shapes.

Functions take the low-level ``docker.APIClient`` DockerSpawner already holds and block: the
spawner runs them in its thread pool, never on the hub's event loop.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, NotFound

from spawner.plan import NetworkPlan, WorkspacePlan
from tre_core import labels as tre_labels


_network_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)


def ensure_network(client: docker.APIClient, network: NetworkPlan) -> str:
    """Create the project's network if missing; return its gateway address (the host's side).
    Starts of one project run in parallel threads: one creates, the others wait and find it
    (Docker refuses a second create of the same bridge with a 403, not a 409)."""
    with _network_locks[network.name]:
        return _ensure_network(client, network)


def _ensure_network(client: docker.APIClient, network: NetworkPlan) -> str:
    try:
        info = client.inspect_network(network.name)
    except NotFound:
        try:
            client.create_network(
                network.name, driver="bridge", internal=network.internal, labels=network.labels,
                options={"com.docker.network.bridge.name": network.bridge}, check_duplicate=True,
            )
        except APIError as exc:
            if exc.status_code != 409:  # another spawn of the same project created it first
                raise
        info = client.inspect_network(network.name)
    if not tre_labels.is_managed(info.get("Labels")):
        raise RuntimeError(
            f"Docker network {network.name} exists but was not created by the TRE; "
            "remove or rename it, then start the workspace again."
        )
    # A network of that name made another way (by hand, an older version) would sit outside the
    # firewall's interface match or route outwards: refuse it rather than trust its label.
    bridge = info.get("Options", {}).get("com.docker.network.bridge.name")
    if bool(info.get("Internal")) != network.internal or bridge != network.bridge:
        raise RuntimeError(
            f"Docker network {network.name} is not the one the TRE makes (internal: {info.get('Internal')}, "
            f"bridge: {bridge}, expected {network.internal} and {network.bridge}); an administrator "
            "removes it (docker network rm), then the workspace can start."
        )
    return info["IPAM"]["Config"][0]["Gateway"].split("/")[0]


def apply_routes(client: docker.APIClient, container_id: str, network: NetworkPlan) -> None:
    """Remove the default route Docker gives even internal networks' containers, from the host
    (the container itself has no capability to change its routes). Fails closed: the caller stops
    the workspace if this raises."""
    if network.default_route:
        return
    pid = client.inspect_container(container_id)["State"]["Pid"]
    if not pid:
        raise RuntimeError(f"container {container_id[:12]} is not running; its routes cannot be set")
    result = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "route", "del", "default"],
                            capture_output=True, text=True, timeout=30)
    if result.returncode != 0 and "No such process" not in result.stderr:  # none to remove is fine
        raise RuntimeError(f"could not remove the default route of {container_id[:12]}: {result.stderr.strip()}")


class UnsafeWorkspaceFolder(RuntimeError):
    """A folder the spawner prepares has been replaced by a link or a file; ``folder`` is where
    the workspace sees it (``/project/outputs``)."""

    def __init__(self, message: str, folder: str) -> None:
        super().__init__(message)
        self.folder = folder


def prepare_directories(plan: WorkspacePlan) -> None:
    """Create the project's shared folder and the user's home, owned by the workspace user.

    Researchers write inside these folders, so any of them may have been replaced by a symbolic
    link (``ln -s /etc /project/outputs``); as root, a plain ``mkdir`` + ``chown`` would follow it
    and hand the link's target to the workspace user. Each folder is therefore reached one
    component at a time from the platform's own root, never following a link, and only the
    opened folder itself changes owner."""
    if plan.writable_root is None:
        raise ValueError("the plan does not say below which root its folders are")
    plan.writable_root.mkdir(parents=True, exist_ok=True)
    for directory in plan.writable_dirs:
        try:
            _owned_directory(plan.writable_root, directory.relative_to(plan.writable_root), plan.uid, plan.gid)
        except UnsafeWorkspaceFolder as exc:
            exc.folder = _as_seen_inside(plan, directory)
            raise
    for mount in plan.dataset_mounts:
        if not mount.source.is_dir():
            raise FileNotFoundError(
                f"dataset folder {mount.source} is missing on this host; a data steward must restore it"
            )


def _owned_directory(root: Path, relative: Path, uid: int, gid: int) -> None:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in relative.parts:
            try:
                os.mkdir(part, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            try:
                inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:  # ELOOP: a link; ENOTDIR: a file
                raise UnsafeWorkspaceFolder(
                    f"{root / relative} is not a plain folder: a link or a file has taken the place of {part}",
                    folder=str(root / relative)) from exc
            os.close(fd)
            fd = inner
        os.fchown(fd, uid, gid)
    finally:
        os.close(fd)


def _as_seen_inside(plan: WorkspacePlan, directory: Path) -> str:
    for mount in plan.mounts:
        if directory == mount.source or mount.source in directory.parents:
            return str(mount.target / directory.relative_to(mount.source))
    return str(directory)


def volumes(plan: WorkspacePlan) -> dict[str, dict[str, str]]:
    """DockerSpawner's ``volumes`` trait: host path -> bind target and mode."""
    return {
        str(m.source): {"bind": str(m.target), "mode": "ro" if m.read_only else "rw"}
        for m in plan.mounts
    }


def create_kwargs(plan: WorkspacePlan) -> dict[str, Any]:
    return {
        "labels": plan.labels,
        "user": f"{plan.uid}:{plan.gid}",
        "working_dir": str(plan.working_dir),
        "hostname": plan.project,
    }


def remove_network_if_unused(client: docker.APIClient, name: str) -> bool:
    """Remove a project's network once its last workspace is gone; keep it while one is attached."""
    try:
        if client.inspect_network(name).get("Containers"):
            return False
        client.remove_network(name)
        return True
    except NotFound:
        return False
    except APIError as exc:
        if exc.status_code in (403, 409):  # a workspace of the project attached meanwhile
            return False
        raise


def host_config(plan: WorkspacePlan, gateway: str) -> dict[str, Any]:
    """DockerSpawner's ``extra_host_config``: the hardening of the plan in Docker's terms."""
    hardening = plan.hardening
    return {
        # Docker's embedded DNS forwards names it does not know to these servers. The gateway,
        # where the firewall drops port 53, instead of the host's resolvers: Docker 20.10 forwards
        # from the host's own namespace when those are loopback addresses (CVE-2024-29018).
        "dns": [gateway],
        "dns_opt": ["timeout:1", "attempts:1"],
        "read_only": hardening.read_only_root,
        "tmpfs": dict(hardening.tmpfs),
        "cap_drop": list(hardening.drop_capabilities),
        "security_opt": ["no-new-privileges:true"] if hardening.no_new_privileges else [],
        "pids_limit": hardening.pids_limit,
        # no swap beyond the memory limit: a memory hog is stopped, not slowed into the host's swap
        "memswap_limit": plan.mem_limit,
    }
