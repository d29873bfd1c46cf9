"""ProjectSpawner: DockerSpawner for one workspace per (user, approved project).

The server name is the project's slug (``/user/<user>/<project>/``). At each start the catalogue
decides what the workspace may hold (``datasets.catalogue.workspace_access``), a pure function
turns that into a ``WorkspacePlan``, and ``docker_adapter`` applies it. A refusal reaches the
browser in its own language and says what to do.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlparse

from dockerspawner import DockerSpawner
from traitlets import Integer, default

from datasets.audit import AuditAction
from datasets.catalogue import AccessRefused, Refusal
from datasets.messages import explain
from spawner import docker_adapter, firewall
from spawner.catalogue_workspace import IMAGE_CHOSEN_BY_CATALOGUE, CatalogueWorkspace, WorkspaceRefused
from spawner.plan import WorkspacePlan

__all__ = ["IMAGE_CHOSEN_BY_CATALOGUE", "ProjectSpawner", "WorkspaceRefused"]


class ProjectSpawner(CatalogueWorkspace, DockerSpawner):
    firewall_hub_port = Integer(
        0, help="When set, the hub's port that the host firewall (spawner.firewall) lets workspaces "
                "reach: no workspace starts unless those rules are in place. 0 checks nothing.",
    ).tag(config=True)

    @default("remove")
    def _default_remove(self):
        # Workspaces keep their state in mounted folders; a stopped container has nothing to keep.
        return True

    @default("use_internal_ip")
    def _default_use_internal_ip(self):
        return True

    @default("pull_policy")
    def _default_pull_policy(self):
        # Images are built and pinned here; an enclave pulls nothing.
        return "never"

    async def check_site(self) -> None:
        if self.firewall_hub_port and not await self._in_pool(firewall.is_installed, self.instance,
                                                               self.firewall_hub_port):
            self.log.error("Refused workspace %s/%s: the host firewall rules of instance %s are missing",
                           self.user.name, self.name, self.instance)
            await self.audit(AuditAction.WORKSPACE_REFUSED, reason=Refusal.FIREWALL_MISSING.value)
            raise WorkspaceRefused(explain(AccessRefused(Refusal.FIREWALL_MISSING), self.language))

    async def start(self):
        began = time.perf_counter()
        access, image, plan = await self.planned_workspace()
        gateway = await self._in_pool(docker_adapter.ensure_network, self.client, plan.network)
        self._apply(plan, gateway)
        self.log.info(
            "Workspace %s/%s: datasets %s", self.user.name, self.name,
            ", ".join(str(m.target) for m in plan.dataset_mounts),
        )
        prepared = time.perf_counter()
        address = await super().start()
        await self._wait_for_port(*address)
        self.log.info("Workspace %s/%s: prepared in %.0f ms, container up in %.0f ms", self.user.name, self.name,
                      (prepared - began) * 1000, (time.perf_counter() - prepared) * 1000)
        await self.audit_start(access, image, plan)
        return address

    async def start_object(self):
        await super().start_object()
        if self.plan is None:  # DockerSpawner restarting a container it found: nothing planned
            return
        try:
            await self._in_pool(docker_adapter.apply_routes, self.client, self.container_id, self.plan.network)
        except Exception:
            self.log.error("Stopping %s: its network could not be closed", self.container_name)
            await self.stop_object()
            raise

    async def _wait_for_port(self, ip: str, port: int) -> None:
        """Return once the server accepts connections, polling every 50 ms: JupyterHub's own check
        backs off exponentially (0.2, 0.4, ... 5 s), so a server ready at 3.1 s is otherwise seen
        at 6 s. Returns quietly, letting JupyterHub's check decide, when the container has exited
        or after ``http_timeout``."""
        deadline = time.monotonic() + self.http_timeout
        attempts = 0
        while time.monotonic() < deadline:
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout=1)
            except (OSError, asyncio.TimeoutError):
                attempts += 1
                if attempts % 20 == 0 and await self.poll() is not None:
                    return  # the server died while starting: JupyterHub reports it
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return

    def _apply(self, plan: WorkspacePlan, hub_gateway: str) -> None:
        """Set DockerSpawner's traits from the plan; DockerSpawner then creates the container."""
        self.plan = plan
        self.image = plan.image
        self.object_name = plan.container_name
        self.network_name = plan.network.name
        self.volumes = docker_adapter.volumes(plan)
        self.mem_limit = plan.mem_limit
        self.cpu_limit = plan.cpu_limit
        self.extra_create_kwargs = docker_adapter.create_kwargs(plan)
        self.extra_host_config = docker_adapter.host_config(plan, hub_gateway)
        self.environment = dict(plan.env)
        self.notebook_dir = str(plan.working_dir)
        # The workspace reaches the hub through its own network's gateway, nothing else.
        self.hub_connect_url = f"http://{hub_gateway}:{urlparse(self.hub.api_url).port}"
