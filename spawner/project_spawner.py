"""ProjectSpawner: DockerSpawner for one workspace per (user, approved project).

The server name is the project's slug (``/user/<user>/<project>/``). At each start the catalogue
decides what the workspace may hold (``datasets.access.workspace_access``), a pure function
turns that into a ``WorkspacePlan``, and ``docker_adapter`` applies it. A refusal reaches the
browser in its own language and says what to do.

Starts go through one first-come, first-served queue per hub (``spawner.start_queue``): the cheap
checks run at once, so that a refused person never waits, then each start waits for one of
``concurrent_starts`` slots and holds it from creating its container until its server accepts
connections, which is where a start spends its CPU. While it waits, the spawn page shows the
person's place in line (``progress``). On a swarm the starts' CPU is the nodes', not the hub's:
``ProjectSwarmSpawner`` does not queue.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import ClassVar
from urllib.parse import urlparse

from dockerspawner import DockerSpawner
from tornado import web
from traitlets import Callable, Float, Integer, default

from datasets.access import AccessRefused, Refusal
from datasets.audit import AuditAction
from datasets.messages import explain
from spawner import docker_adapter
from spawner.catalogue_workspace import IMAGE_CHOSEN_BY_CATALOGUE, CatalogueWorkspace, WorkspaceRefused
from spawner.plan import WorkspacePlan
from spawner.start_queue import StartQueue, Ticket, TicketState
from tre_core.i18n import translate

__all__ = ["IMAGE_CHOSEN_BY_CATALOGUE", "ProjectSpawner", "WorkspaceRefused", "WorkspaceStartTimedOut"]


def default_concurrent_starts() -> int:
    """Two starts per core. A start's CPU is JupyterLab's own, but a slot is also held through
    Docker creating the container, the network's routes and the port poll, when its core is idle:
    one slot per core left cores idle. Measured with benchmarks/concurrent_spawns.py, 50 starts on
    2 cores: 477 s with 2 slots, 304 s with 4 (README, "Many people starting at once")."""
    return 2 * (os.cpu_count() or 1)


class WorkspaceStartTimedOut(web.HTTPError):
    """500 shown as is: the start got its slot but its server did not come up in time."""

    def __init__(self, message: str) -> None:
        super().__init__(500, "%s", message)
        self.jupyterhub_message = message


WAITING_IN_LINE = "Waiting for a free start slot: you are number {place} in the queue."
STARTING = "Starting your workspace…"
SLOT_TIMED_OUT = ("Your workspace did not start within {seconds} s of its turn. Start it again; if this "
                  "happens again, tell the platform's administrators.")


class ProjectSpawner(CatalogueWorkspace, DockerSpawner):
    firewall_in_place = Callable(
        None, allow_none=True,
        help="A function of the instance's name, asked (in a worker thread) before every start: whether "
             "the host firewall around the workspaces is in place; no workspace starts while it says "
             "no. jupyterhub_config.py sets the host firewall's check (hub.firewall.guard with "
             "the hub's and the package index's ports). None checks nothing.",
    ).tag(config=True)
    concurrent_starts = Integer(
        help="Workspace starts under way at once, for the whole hub; the others wait in line, first "
             "come, first served, and see their place on the spawn page. Default: two per CPU core of "
             "the host (default_concurrent_starts).",
    ).tag(config=True)
    slot_start_timeout = Float(
        180, help="Most seconds one start may take once it has its slot (container creation until the "
                  "server accepts connections). The hub's start_timeout counts the wait in line too, so "
                  "it must be longer.",
    ).tag(config=True)

    # One line for every spawner of the hub process: made by the first start, sized by its trait.
    _start_queue: ClassVar[StartQueue | None] = None
    _start_ticket: Ticket | None = None
    _start_language: str = "en"

    @default("concurrent_starts")
    def _default_concurrent_starts(self):
        return default_concurrent_starts()

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

    def start_queue(self) -> StartQueue:
        """The hub's start queue, shared by every ProjectSpawner (they are all configured alike)."""
        queue = ProjectSpawner._start_queue
        if queue is None:
            queue = ProjectSpawner._start_queue = StartQueue(self.concurrent_starts)
        elif queue.slots != self.concurrent_starts:
            queue.resize(self.concurrent_starts)
        return queue

    async def check_site(self) -> None:
        if self.firewall_in_place is not None and not await self._in_pool(self.firewall_in_place, self.instance):
            self.log.error("Refused workspace %s/%s: the host firewall rules of instance %s are missing",
                           self.user.name, self.name, self.instance)
            await self.audit(AuditAction.WORKSPACE_REFUSED, reason=Refusal.FIREWALL_MISSING.value)
            raise WorkspaceRefused(explain(AccessRefused(Refusal.FIREWALL_MISSING), self.language))

    async def start(self):
        began = time.perf_counter()
        # The progress stream is another request: remember the language of the one that started us.
        self._start_language = self.language
        ticket = self._start_ticket = Ticket(f"{self.user.name}/{self.name}")
        try:
            return await self._start(ticket, began)
        finally:
            # A start that ends without stop() (a cancelled wait, a server that died) must not
            # leave its ticket for the next start's progress stream to read.
            self._start_ticket = None

    async def _start(self, ticket: Ticket, began: float):
        access, image, plan = await self.planned_workspace()
        prepared = time.perf_counter()
        queue = self.start_queue()
        try:
            async with queue.slot(ticket):
                dequeued = time.perf_counter()
                try:
                    address = await asyncio.wait_for(self._start_in_slot(plan), self.slot_start_timeout)
                except TimeoutError:
                    self.log.error("Workspace %s/%s: not up within %.0f s of its turn", self.user.name,
                                   self.name, self.slot_start_timeout)
                    raise WorkspaceStartTimedOut(translate(self._start_language, SLOT_TIMED_OUT,
                                                           seconds=round(self.slot_start_timeout))) from None
        except asyncio.CancelledError:
            if ticket.state is TicketState.LEFT:
                self.log.info("Workspace %s/%s: left the start queue after %.1f s", self.user.name, self.name,
                              time.perf_counter() - prepared)
            raise
        self.log.info("Workspace %s/%s: prepared in %.0f ms, waited %.0f ms for a start slot, container up in "
                      "%.0f ms", self.user.name, self.name, (prepared - began) * 1000, ticket.queued_s * 1000,
                      (time.perf_counter() - dequeued) * 1000)
        await self.audit_start(access, image, plan, queued_s=round(ticket.queued_s, 3))
        return address

    async def _start_in_slot(self, plan: WorkspacePlan) -> tuple[str, int]:
        """What a start slot is held for: the network, the container, and JupyterLab's own start
        until its port accepts connections (the part that costs CPU)."""
        gateway = await self._in_pool(docker_adapter.ensure_network, self.client, plan.network)
        self._apply(plan, gateway)
        self.log.info(
            "Workspace %s/%s: datasets %s", self.user.name, self.name,
            ", ".join(str(m.target) for m in plan.dataset_mounts),
        )
        address = await super().start()
        await self._wait_for_port(*address)
        return address

    async def progress(self):
        """The spawn page's messages: how far the project's extracts are while they are prepared,
        the place in the start queue while waiting (each time either changes), then that the
        workspace is starting, in the language of the person who asked."""
        queue = self.start_queue()
        shown = preparing_shown = None
        while True:
            ticket = self._start_ticket
            state = ticket.state if ticket else TicketState.NEW
            if state in (TicketState.STARTING, TicketState.DONE):
                yield {"progress": 50, "message": translate(self._start_language, STARTING)}
                return
            if state is TicketState.LEFT:
                return
            preparing = self.preparing_message(self._start_language)
            if preparing is not None and preparing != preparing_shown:
                preparing_shown = preparing
                yield {"progress": max(1, (self.preparing_progress or 0) * 40 // 100), "message": preparing}
            place = queue.place(ticket) if ticket else None
            if place is not None and place != shown:
                shown = place
                yield {"progress": 10, "message": translate(self._start_language, WAITING_IN_LINE, place=place)}
            # the hub ends this generator when the start ends; the timeout covers a new ticket
            await queue.changed(timeout=1)

    def get_env(self):
        return self.with_package_index(super().get_env(), getattr(self, "_gateway", None))

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

    async def stop(self, now=False):
        self._start_ticket = None  # the next start's progress must not read this one's
        await super().stop(now=now)

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
        self._gateway = hub_gateway
        self.notebook_dir = str(plan.working_dir)
        # The workspace reaches the hub through its own network's gateway, nothing else.
        self.hub_connect_url = f"http://{hub_gateway}:{urlparse(self.hub.api_url).port}"
