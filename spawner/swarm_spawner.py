"""ProjectSwarmSpawner: DockerSpawner's SwarmSpawner for one workspace per (user, approved project),
run as a swarm service on whichever node holds the project's extracts (a data steward labels a node
``tre.dataset.<slug>=<version>`` once the extracts folder of that dataset version is mounted on it).

The catalogue checks, refusals, folders and audit rows are ``CatalogueWorkspace``'s, the same as
the single-host ``ProjectSpawner``; ``swarm_adapter`` renders the plan as the service's
parameters. The spawner talks to a manager's engine (``client_kwargs``/``DOCKER_HOST``).

Where the hub runs: as a container on a manager node, named by ``hub_container``; each project's
overlay network is attachable, and the spawner joins the hub's container to it, so the hub (and
nothing of other projects) reaches the workspace by its service name.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlparse

from docker.errors import APIError, NotFound
from dockerspawner import SwarmSpawner
from traitlets import Bool, Float, List, Unicode, default

from datasets.access import AccessRefused, Refusal
from spawner import swarm_adapter
from spawner.catalogue_workspace import CatalogueWorkspace
from spawner.swarm_adapter import ServiceParameters, SwarmSite
from tre_core import labels as tre_labels

# Task states in which the swarm is still finding a node or preparing it.
WAITING = {"new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting"}


class ProjectSwarmSpawner(CatalogueWorkspace, SwarmSpawner):
    # the workspace runs on another node: no loop-mounted quota filesystems here, /tmp's size only
    mounts_quota_volumes = False
    dataset_label_prefix = Unicode(
        "tre.dataset.", help="Node label prefix: a node holding dataset <slug> at version <v> carries "
                             "the label <prefix><slug>=<v>.").tag(config=True)
    placement_constraints = List(
        Unicode(), help="Constraints added to every workspace, e.g. node.role==worker.").tag(config=True)
    encrypted_network = Bool(True, help="Encrypt the project networks' traffic between nodes (IPsec).").tag(
        config=True)
    placement_timeout = Float(
        60, help="Seconds a workspace may wait for a node that holds its datasets before it is "
                 "refused (the swarm would otherwise keep it pending for ever).").tag(config=True)
    hub_container = Unicode(
        "", help="Name of the hub's container on the manager this spawner talks to: joined to each "
                 "project's network so the hub reaches the workspace. Empty: the hub is already "
                 "connected some other way.").tag(config=True)

    @default("use_internal_ip")
    def _default_use_internal_ip(self):
        return True  # nothing published on the nodes' addresses: reached over the project network only

    @property
    def site(self) -> SwarmSite:
        return SwarmSite(dataset_label_prefix=self.dataset_label_prefix,
                         extra_constraints=tuple(self.placement_constraints),
                         encrypted_network=self.encrypted_network)

    # Per project network, in this hub process: a lock around making or removing the network (and
    # the hub's attachment to it), and how many starts are between that and their service existing,
    # so that a stop never removes the network under a start of the same project.
    _network_locks: dict[str, asyncio.Lock] = {}
    _starting: dict[str, int] = {}

    _start_language: str = "en"

    async def progress(self):
        """The spawn page's line while the project's extracts are prepared, each time it changes;
        the hub ends this when the start ends."""
        shown = None
        while True:
            message = self.preparing_message(self._start_language)
            if message is not None and message != shown:
                shown = message
                yield {"progress": max(1, (self.preparing_progress or 0) * 40 // 100), "message": message}
            await asyncio.sleep(1)

    async def start(self):
        began = time.perf_counter()
        # the progress stream is another request: remember the language of the one that started us
        self._start_language = self.language
        access, image, plan = await self.planned_workspace()
        try:  # before any network is made: a dataset the swarm cannot place is a refusal, in words
            swarm_adapter.dataset_constraints(plan, self.site)
        except swarm_adapter.UnplaceableDataset as error:
            versions = ", ".join(f"{slug} {version}" for slug, version in plan.dataset_versions)
            raise await self.refuse(AccessRefused(Refusal.NO_NODE_FOR_DATASETS, project=self.name,
                                                  datasets=versions), error) from None
        network = plan.network.name
        async with self._network_locks.setdefault(network, asyncio.Lock()):
            self._starting[network] = self._starting.get(network, 0) + 1
        try:
            async with self._network_locks[network]:
                nameserver = await self._in_pool(swarm_adapter.ensure_overlay_network, self.client, plan.network,
                                                 self.site)
                if self.hub_container:
                    await self._in_pool(self._join_hub, network)
            self.plan = plan
            self._apply(swarm_adapter.service_parameters(plan, self.site, nameserver))
            address = await super().start()
        finally:
            self._starting[network] -= 1
        node = await self._in_pool(self._task_node)
        self.log.info("Workspace %s/%s: service %s on node %s in %.0f ms", self.user.name, self.name,
                      self.service_name, node, (time.perf_counter() - began) * 1000)
        await self.audit_start(access, image, plan, service=self.service_id[:12], node=node)
        return address

    def _apply(self, service: ServiceParameters) -> None:
        """Set SwarmSpawner's traits; SwarmSpawner then creates the service."""
        self.image = service.image
        self.object_name = service.name
        self.network_name = service.network
        self.volumes = {}  # the mounts are all in the container spec, with the tmpfs
        self.environment = dict(service.environment)
        self.extra_container_spec = service.container
        self.extra_task_spec = service.task
        self.extra_placement_spec = service.placement
        self.extra_endpoint_spec = service.endpoint
        self.extra_create_kwargs = {"labels": service.labels}
        self.notebook_dir = service.container["workdir"]
        if self.hub_container:
            self.hub_connect_url = f"http://{self.hub_container}:{urlparse(self.hub.api_url).port}"

    def get_env(self):
        # the index runs beside the hub in its container, which sits on every project network
        return self.with_package_index(super().get_env(), self.hub_container or None)

    def _join_hub(self, network: str) -> None:
        """Attach the hub's container to the project's network, once: the project's second
        workspace finds it attached already."""
        if network in self.client.inspect_container(self.hub_container)["NetworkSettings"]["Networks"]:
            return
        try:
            self.client.connect_container_to_network(self.hub_container, network)
        except APIError as exc:  # attached meanwhile (409 on Docker 20.10, "already exists" before)
            if exc.status_code != 409 and "already" not in str(exc):
                raise

    def _task_node(self) -> str:
        """The hostname of the node running the workspace, for the audit row."""
        tasks = self.client.tasks(filters={"service": self.service_name, "desired-state": "running"})
        if not tasks or not tasks[0].get("NodeID"):
            return ""
        return self.client.inspect_node(tasks[0]["NodeID"])["Description"]["Hostname"]

    async def start_object(self):
        """Wait for the task to run, as SwarmSpawner does, but not for ever: a task no node can
        take (no node holds the datasets) is refused after ``placement_timeout`` with a message
        saying so, and one that fails on its node (a missing folder) with the node's words."""
        deadline = time.monotonic() + self.placement_timeout
        delay = 0.5
        while True:
            task = await self.get_task()
            if task is None:
                raise RuntimeError(f"service {self.service_name} has no task")
            status = task["Status"]
            state = status["State"].lower()
            if state == "running":
                return
            if state not in WAITING:
                await self._remove_quietly()
                raise RuntimeError(f"workspace {self.service_name} failed on its node: {state}, "
                                   f"{status.get('Err') or status.get('Message')}")
            if time.monotonic() > deadline:
                await self._remove_quietly()
                if state == "pending":
                    raise await self.refuse(self._no_node_refusal(), status.get("Err") or "pending") from None
                raise RuntimeError(f"workspace {self.service_name} still {state} after {self.placement_timeout:.0f} s")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 5)

    def _no_node_refusal(self) -> AccessRefused:
        versions = ", ".join(f"{slug} {version}" for slug, version in (self.plan.dataset_versions if self.plan else ()))
        return AccessRefused(Refusal.NO_NODE_FOR_DATASETS, project=self.name, datasets=versions)

    async def _remove_network(self, name: str) -> None:
        async with self._network_locks.setdefault(name, asyncio.Lock()):
            if not self._starting.get(name):
                await self._in_pool(self.remove_network_if_unused, name)

    def remove_network_if_unused(self, name: str) -> bool:
        """Once no workspace service of this installation uses the project's network, the hub's
        container leaves it and the network goes (the hub's own attachment would otherwise keep
        it in use for ever)."""
        services = self.client.services(filters={"label": tre_labels.workspaces_filter(self.instance)})
        try:
            network_id = self.client.inspect_network(name)["Id"]
        except NotFound:
            return False
        for service in services:
            targets = {n.get("Target") for n in service["Spec"].get("TaskTemplate", {}).get("Networks", [])}
            if targets & {name, network_id}:
                return False
        if self.hub_container:
            try:
                self.client.disconnect_container_from_network(self.hub_container, name)
            except APIError as exc:  # not attached (any more): nothing to leave
                if exc.status_code not in (404, 409, 500):
                    raise
        return swarm_adapter.remove_overlay_network_if_unused(self.client, name)

    async def remove_object(self):
        """Remove the service; one already gone (or never made, when JupyterHub stops a refused
        start) is nothing to do."""
        if not self.object_id:
            return
        try:
            await super().remove_object()
        except NotFound:
            pass

    async def _remove_quietly(self) -> None:
        await self.remove_object()
        self.clear_state()
