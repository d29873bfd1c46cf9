"""ProjectSpawner: DockerSpawner for one workspace per (user, approved project).

The server name is the project's slug (``/user/<user>/<project>/``). At each start the catalogue
decides what the workspace may hold (``datasets.catalogue.workspace_access``), a pure function
turns that into a ``WorkspacePlan``, and ``docker_adapter`` applies it. A refusal reaches the
browser in its own language and says what to do.

Starts go through one first-come, first-served queue per hub (``spawner.start_queue``): the cheap
checks run at once, so that a refused person never waits, then each start waits for one of
``concurrent_starts`` slots and holds it from creating its container until its server accepts
connections, which is where a start spends its CPU. While it waits, the spawn page shows the
person's place in line (``progress``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlparse

from docker import errors as docker_errors
from dockerspawner import DockerSpawner
from tornado import web
from traitlets import Float, Integer, Unicode, default

from datasets import audit
from datasets.audit import AuditAction
from datasets.catalogue import AccessRefused, Refusal, WorkspaceAccess, workspace_access
from datasets.integrity import DatasetIntegrityError, verify_dataset_folder
from datasets.db import session_scope
from datasets.i18n import negotiate, translate
from datasets.images import WorkspaceImage, workspace_image
from datasets.messages import explain
from spawner import docker_adapter, firewall
from spawner.plan import WorkspacePlan, dataset_source, make_workspace_plan
from spawner.start_queue import StartQueue, Ticket, TicketState


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


class WorkspaceRefused(web.HTTPError):
    """403 whose message JupyterHub shows as is, on its error page and in API replies."""

    def __init__(self, message: str) -> None:
        super().__init__(403, "%s", message)
        self.jupyterhub_message = message


IMAGE_CHOSEN_BY_CATALOGUE = (
    "The image of a workspace is the one pinned for its project; it cannot be chosen at start."
)
WAITING_IN_LINE = "Waiting for a free start slot: you are number {place} in the queue."
STARTING = "Starting your workspace…"
SLOT_TIMED_OUT = ("Your workspace did not start within {seconds} s of its turn. Start it again; if this "
                  "happens again, tell the platform's administrators.")


class ProjectSpawner(DockerSpawner):
    catalogue_url = Unicode(help="SQLAlchemy URL of the TRE catalogue.").tag(config=True)
    data_root = Unicode(help="Host folder holding the datasets, one folder each.").tag(config=True)
    workspaces_root = Unicode(help="Host folder of project workspaces and homes.").tag(config=True)
    instance = Unicode("demo", help="Installation name, carried by every Docker object's labels.").tag(
        config=True
    )
    default_mem_limit = Unicode("2G", help="Memory limit when the project sets none.").tag(config=True)
    default_cpu_limit = Float(1.0, help="CPU limit when the project sets none.").tag(config=True)
    pids_limit = Integer(512, help="Most processes a workspace may run at once.").tag(config=True)
    firewall_hub_port = Integer(
        0, help="When set, the hub's port that the host firewall (spawner.firewall) lets workspaces "
                "reach: no workspace starts unless those rules are in place. 0 checks nothing.",
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

    plan: WorkspacePlan | None = None
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

    @property
    def language(self) -> str:
        request = getattr(self.handler, "request", None)
        return negotiate(request.headers.get("Accept-Language") if request else None)

    def _workspace_access(self) -> tuple[WorkspaceAccess, WorkspaceImage]:
        """Who may see what, and which image: both from the catalogue, in one read."""
        with session_scope(self.catalogue_url) as session:
            access = workspace_access(session, self.user.name, self.name, dt.date.today())
            return access, workspace_image(session, self.name)

    def _check_image_present(self, image: WorkspaceImage) -> None:
        """Refuse rather than let DockerSpawner fall back to anything else: the engine must hold an
        image whose id is exactly the pinned digest."""
        try:
            found = self.client.inspect_image(image.digest)["Id"]
        except docker_errors.ImageNotFound:
            found = None
        if found != image.digest:
            raise AccessRefused(Refusal.IMAGE_MISSING, project=self.name,
                                image=f"{image.name}:{image.version}, {image.digest}")

    def _verify_datasets(self, access: WorkspaceAccess) -> None:
        for dataset in access.datasets:
            verify_dataset_folder(dataset.slug, Path(self.data_root), dataset_source(Path(self.data_root), dataset.storage_path),
                                  dict(dataset.file_hashes))

    async def _in_pool(self, function, *args):
        return await asyncio.wrap_future(self.executor.submit(function, *args))

    def _audit(self, action: AuditAction, actor: str | None = None, **details) -> None:
        with session_scope(self.catalogue_url) as session:
            audit.record(session, actor or self.user.name, action, project=self.name or None, details=details)

    async def audit(self, action: AuditAction, actor: str | None = None, **details) -> None:
        await self._in_pool(lambda: self._audit(action, actor, **details))

    def _exit_state(self) -> dict:
        """How the container ended, if it has (an out-of-memory kill, a crash), before it is removed."""
        try:
            state = self.client.inspect_container(self.container_id)["State"]
        except Exception:  # gone already, or never made: nothing to tell
            return {}
        if state.get("Running"):
            return {}
        return {"exit_code": state.get("ExitCode"), "oom_killed": bool(state.get("OOMKilled"))}

    async def start(self):
        began = time.perf_counter()
        # The progress stream is another request: remember the language of the one that started us.
        self._start_language = self.language
        ticket = self._start_ticket = Ticket(f"{self.user.name}/{self.name}")
        if self.user_options.get("image"):
            await self.audit(AuditAction.WORKSPACE_REFUSED, reason="image_in_request",
                             image=str(self.user_options["image"]))
            # JupyterHub saved these options as the server's defaults for its next starts, which
            # would then all be refused: forget them (the hub itself commits inline like this).
            self.user_options = {}
            self.orm_spawner.user_options = {}
            self.user.db.commit()
            raise WorkspaceRefused(translate(self.language, IMAGE_CHOSEN_BY_CATALOGUE))
        try:
            access, image = await self._in_pool(self._workspace_access)
            await self._in_pool(self._check_image_present, image)
        except AccessRefused as refusal:
            self.log.warning("Refused workspace %s/%s: %s", self.user.name, self.name, refusal)
            await self.audit(AuditAction.WORKSPACE_REFUSED, reason=refusal.reason.value, facts=refusal.params)
            raise WorkspaceRefused(explain(refusal, self.language)) from None
        plan = make_workspace_plan(
            access,
            instance=self.instance,
            image=image.digest,
            data_root=Path(self.data_root),
            workspaces_root=Path(self.workspaces_root),
            default_mem_limit=self.default_mem_limit,
            default_cpu_limit=self.default_cpu_limit,
            pids_limit=self.pids_limit,
            ui_language=self.language,
        )
        try:
            await self._in_pool(self._verify_datasets, access)
        except DatasetIntegrityError as error:
            self.log.error("Refused workspace %s/%s: %s", self.user.name, self.name, error)
            refusal = AccessRefused(Refusal.DATASET_INTEGRITY, dataset=error.dataset, problem=error.problem)
            await self.audit(AuditAction.WORKSPACE_REFUSED, reason=refusal.reason.value, facts=refusal.params)
            raise WorkspaceRefused(explain(refusal, self.language)) from None
        if self.firewall_hub_port and not await self._in_pool(firewall.is_installed, self.instance,
                                                               self.firewall_hub_port):
            self.log.error("Refused workspace %s/%s: the host firewall rules of instance %s are missing",
                           self.user.name, self.name, self.instance)
            await self.audit(AuditAction.WORKSPACE_REFUSED, reason=Refusal.FIREWALL_MISSING.value)
            raise WorkspaceRefused(explain(AccessRefused(Refusal.FIREWALL_MISSING), self.language))
        try:
            await self._in_pool(docker_adapter.prepare_directories, plan)
        except docker_adapter.UnsafeWorkspaceFolder as error:
            self.log.error("Refused workspace %s/%s: %s", self.user.name, self.name, error)
            refusal = AccessRefused(Refusal.UNSAFE_FOLDER, project=access.project, folder=error.folder)
            await self.audit(AuditAction.WORKSPACE_REFUSED, reason=refusal.reason.value, facts=refusal.params)
            raise WorkspaceRefused(explain(refusal, self.language)) from None
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
        await self.audit(
            AuditAction.WORKSPACE_START,
            container=self.container_id[:12],
            queued_s=round(ticket.queued_s, 3),
            image=plan.image,
            image_name=f"{image.name}:{image.version}",
            mounts=[{"source": str(m.source), "target": str(m.target), "read_only": m.read_only}
                    for m in plan.mounts],
            datasets={d.slug: d.version for d in access.datasets},
        )
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
        """The spawn page's messages: the place in the start queue while waiting (each time it
        changes), then that the workspace is starting, in the language of the person who asked."""
        queue = self.start_queue()
        shown = None
        while True:
            ticket = self._start_ticket
            state = ticket.state if ticket else TicketState.NEW
            if state in (TicketState.STARTING, TicketState.DONE):
                yield {"progress": 50, "message": translate(self._start_language, STARTING)}
                return
            if state is TicketState.LEFT:
                return
            place = queue.place(ticket) if ticket else None
            if place is not None and place != shown:
                shown = place
                yield {"progress": 10, "message": translate(self._start_language, WAITING_IN_LINE, place=place)}
            # the hub ends this generator when the start ends; the timeout covers a new ticket
            await queue.changed(timeout=1)

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

    def get_state(self):
        state = super().get_state()
        if self.network_name:
            state["network_name"] = self.network_name  # so that a restarted hub still cleans it up
        return state

    def load_state(self, state):
        super().load_state(state)
        if state.get("network_name"):
            self.network_name = state["network_name"]

    async def stop(self, now=False):
        self._start_ticket = None  # the next start's progress must not read this one's
        container = self.container_id[:12]
        ended = await self._in_pool(self._exit_state) if self.container_id else {}
        await super().stop(now=now)
        # The spawner cannot tell who asked (the person, the idle culler, the reconciler, an admin):
        # the hub is the actor, the person a detail; the reconciler records its own reason apart.
        await self.audit(AuditAction.WORKSPACE_STOP, actor="hub", user=self.user.name, container=container, **ended)
        if self.network_name.startswith(f"tre-{self.instance}-"):
            await self._in_pool(docker_adapter.remove_network_if_unused, self.client, self.network_name)

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
