"""What every TRE spawner does whatever engine runs the workspace: ask the catalogue who may see
what, refuse with a message in the person's language, wait (off the event loop) while the
project's extracts are prepared, verify them, prepare the folders, make the plan, and write each
act to the audit log.

``CatalogueWorkspace`` is a mixin for DockerSpawner subclasses (``ProjectSpawner`` on one host,
``ProjectSwarmSpawner`` on a swarm): it uses only what DockerSpawner gives both (``client``,
``executor``, ``user``, ``name``, ``container_id``, ``network_name``), so the rules live once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar

from docker import errors as docker_errors
from sqlalchemy.exc import InterfaceError, OperationalError
from tornado import web
from traitlets import Bool, Float, Integer, Unicode, default
from traitlets.config import LoggingConfigurable

from datasets import audit
from datasets.access import AccessRefused, Refusal, WorkspaceAccess, workspace_access
from datasets.audit import AuditAction
from datasets.accreditation import require_accredited
from datasets.images import WorkspaceImage, workspace_image
from datasets.integrity import DatasetIntegrityError
from datasets.manifest import TreeChanged, verify_tree
from datasets.messages import explain
from datasets.quotas import StorageQuotas, size_bytes
from spawner import docker_adapter, storage
from spawner.plan import WorkspacePlan, extract_source, make_workspace_plan, package_index_env
from tre_core.db import session_scope
from tre_core.i18n import negotiate, translate


class WorkspaceRefused(web.HTTPError):
    """403 whose message JupyterHub shows as is, on its error page and in API replies."""

    def __init__(self, message: str) -> None:
        super().__init__(403, "%s", message)
        self.jupyterhub_message = message


class CatalogueUnavailable(web.HTTPError):
    """503: the catalogue's database cannot be reached, so nobody's access can be read; nothing
    starts (a start is never let through unchecked) and the person is told to try again shortly."""

    def __init__(self, message: str) -> None:
        super().__init__(503, "%s", message)
        self.jupyterhub_message = message


class RefusedStarts:
    """The refusals of starts whose server rows are gone (``_forget_refused``), for a while: a
    browser that reaches the spawn page only after the row went (a slow network, a reload, the
    page kept open) is told why the workspace was not started, not "no such server"."""

    def __init__(self, keep_seconds: float = 3600.0, most: int = 10_000) -> None:
        self.keep_seconds, self.most = keep_seconds, most
        self._lock = threading.Lock()
        self._refusals: dict[tuple[str, str], tuple[float, int, str]] = {}

    def __deepcopy__(self, memo) -> RefusedStarts:
        return self  # JupyterHub copies its settings (template_vars): one memory per hub

    def remember(self, user: str, server: str, error: web.HTTPError) -> None:
        message = getattr(error, "jupyterhub_message", None) or error.log_message or ""
        with self._lock:
            self._refusals.pop((user, server), None)  # the newest last, for the trim below
            self._refusals[user, server] = (time.monotonic(), error.status_code, message)
            while len(self._refusals) > self.most:
                del self._refusals[next(iter(self._refusals))]

    def forget(self, user: str, server: str) -> None:
        """The server started again: its old refusal no longer says anything."""
        with self._lock:
            self._refusals.pop((user, server), None)

    def after(self, user: str | None, error: object) -> tuple[int, str] | None:
        """``(status, message)`` of the refused start that ``error`` (JupyterHub's 404 "<user>
        has no such server <name>" for a page of that server) is about, or None."""
        if not user or not isinstance(error, web.HTTPError) or error.status_code != 404:
            return None
        prefix = f"{user} has no such server "
        if not (error.log_message or "").startswith(prefix):
            return None
        with self._lock:
            known = self._refusals.get((user, error.log_message[len(prefix):]))
        if known is None or time.monotonic() - known[0] > self.keep_seconds:
            return None
        return known[1], known[2]


# one per hub process: the hub's pages ask it (jupyterhub_config.py's template variables)
REFUSED_STARTS = RefusedStarts()

CATALOGUE_UNREACHABLE = (
    "The TRE's catalogue cannot be reached just now, so your access cannot be checked and the workspace "
    "was not started. Try again in a minute; if this lasts, tell the TRE's operators."
)
IMAGE_CHOSEN_BY_CATALOGUE = (
    "The image of a workspace is the one pinned for its project; it cannot be chosen at start."
)
DATA_BEING_PREPARED = "Your data is being prepared: {progress} %"
DATA_STILL_BEING_PREPARED = (
    "Your data is still being prepared ({progress} %), so the workspace did not start. Start it again "
    "in a few minutes; if it is not ready within the hour, tell a data steward ({stewards})."
)


class CatalogueWorkspace(LoggingConfigurable):
    """Catalogue checks, plan and audit shared by the TRE's spawners (mixed in before the
    DockerSpawner class it extends). Configurable itself so that its traits are traits, under the
    spawner's own config section (``c.ProjectSpawner.catalogue_url``)."""

    catalogue_url = Unicode(help="SQLAlchemy URL of the TRE catalogue.").tag(config=True)
    extracts_root = Unicode(help="Host folder of the projects' extracts, <project>/<dataset>@<version>; the only "
                                 "data a workspace mounts.").tag(config=True)
    extract_poll_seconds = Float(2.0, help="Seconds between two looks at an extract being prepared while a "
                                           "start waits for it.").tag(config=True)
    extract_wait_timeout = Float(
        1500, help="Most seconds a start waits for its extracts to be prepared before it is refused with "
                   "their progress (keep it below the hub's start_timeout).").tag(config=True)
    workspaces_root = Unicode(help="Host folder of project workspaces and homes.").tag(config=True)
    instance = Unicode("demo", help="Installation name, carried by every Docker object's labels.").tag(
        config=True
    )
    default_mem_limit = Unicode("2G", help="Memory limit when the project sets none.").tag(config=True)
    default_cpu_limit = Float(1.0, help="CPU limit when the project sets none.").tag(config=True)
    pids_limit = Integer(512, help="Most processes a workspace may run at once.").tag(config=True)
    read_max_bytes = Integer(5 * 1024**2, help="Largest file whose content the workspace shows in the browser "
                                               "(TRE_READ_MAX_BYTES in the workspace).").tag(config=True)
    start_threads = Integer(
        16, help="Worker threads shared by every start and stop of the hub for their catalogue reads, "
                 "integrity checks, folder preparation and Docker calls. DockerSpawner's own pool has one "
                 "thread, so each start waited for every other start's checks.",
    ).tag(config=True)

    project_quota = Unicode("10G", help="Size of /project when the catalogue sets none for the project.").tag(config=True)
    home_quota = Unicode("2G", help="Size of each member's home when the catalogue sets none.").tag(config=True)
    tmp_quota = Unicode("1G", help="Size of a workspace's /tmp (tmpfs) when the catalogue sets none.").tag(config=True)
    storage_preallocate = Bool(True, help="Reserve each quota's blocks on the host when its filesystem is made.").tag(config=True)
    storage_reserve = Unicode("5G", help="Free space on the host that no workspace storage may take.").tag(config=True)
    # /project and the homes as loop-mounted filesystems on this host (spawner/storage.py); a swarm's
    # workspaces run on other hosts, where only /tmp's size applies.
    mounts_quota_volumes: ClassVar[bool] = True
    package_index_port = Integer(
        0, help="Port of the TRE's package index (package_index) where workspaces reach the hub (their "
                "network's gateway, or the hub's container on a swarm); every workspace's pip uses it and "
                "no other index. 0: no index configured.",
    ).tag(config=True)

    plan: WorkspacePlan | None = None
    # seconds a refused start's server stays known after the refusal, for the spawn page to say why
    forget_refused_after: ClassVar[float] = 5.0
    # While a start waits for its extracts: how far their preparation is (per cent), for progress()
    preparing_progress: int | None = None
    # One pool for the hub process, made by the first spawner that needs it, sized by its trait.
    _start_pool: ClassVar[ThreadPoolExecutor | None] = None

    @property
    def executor(self) -> ThreadPoolExecutor:
        """Replaces DockerSpawner's single-thread executor (its ``docker()`` calls use this too)."""
        if CatalogueWorkspace._start_pool is None:
            CatalogueWorkspace._start_pool = ThreadPoolExecutor(self.start_threads, thread_name_prefix="tre-start")
        return CatalogueWorkspace._start_pool

    @default("client_kwargs")
    def _default_client_kwargs(self):
        # one connection to the engine per thread, or urllib3 drops the extra ones after each call
        return {"max_pool_size": self.start_threads}

    @property
    def language(self) -> str:
        request = getattr(self.handler, "request", None)
        return negotiate(request.headers.get("Accept-Language") if request else None)

    def _workspace_access(self) -> tuple[WorkspaceAccess, WorkspaceImage]:
        """Who may see what, and which image: both from the catalogue, in one read."""
        with session_scope(self.catalogue_url) as session:
            access = workspace_access(session, self.user.name, self.name, dt.date.today())
            require_accredited(session, self.user.name, dt.date.today())
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

    def _verify_extracts(self, access: WorkspaceAccess) -> None:
        """Each extract to mount is a plain folder below the extracts root that is still exactly
        what its build recorded: its manifest (beside it, ``.manifest-<id>.json``, with the root
        hash of its row) compared by path, size, inode and modification time, reading nothing else."""
        root = Path(self.extracts_root).resolve()
        for dataset in access.datasets:
            folder = extract_source(Path(self.extracts_root), access.project, dataset)
            if folder.is_symlink() or not folder.resolve().is_relative_to(root):
                raise DatasetIntegrityError(dataset.slug, f"its extract {folder} leads outside the extracts root")
            record = folder.parent / f".manifest-{dataset.extract.id}.json"
            try:
                manifest = json.loads(record.read_text())
                if manifest.get("root_hash") != dataset.extract.root_hash:
                    raise DatasetIntegrityError(dataset.slug, f"the manifest of its extract ({record.name}) is not "
                                                              "the one its build recorded")
                verify_tree(folder, [list(row) for row in manifest["files"]])
            except (OSError, ValueError, KeyError) as error:
                raise DatasetIntegrityError(dataset.slug, f"its extract has no readable manifest ({error})") from None
            except TreeChanged as changed:
                raise DatasetIntegrityError(dataset.slug, f"its extract changed since it was built: {changed.problem}") from None

    def _enqueue_missing_extracts(self, access: WorkspaceAccess) -> None:
        """Ask for the extracts nobody asked for yet (a grant made before extracts existed, say):
        the extraction service builds them; this start waits."""
        from datasets.models import Grant
        from extracts import jobs

        missing = [d.grant_id for d in access.datasets if d.extract is None and d.grant_id is not None]
        if not missing:
            return
        with session_scope(self.catalogue_url) as session:
            for grant_id in missing:
                jobs.enqueue_for_grant(session, session.get(Grant, grant_id))

    async def wait_for_extracts(self, access: WorkspaceAccess) -> WorkspaceAccess:
        """Return the access once every extract it needs is ready, reading the catalogue again in
        the pool every ``extract_poll_seconds``; meanwhile ``preparing_progress`` tells the spawn
        page how far they are. Past ``extract_wait_timeout`` the start is refused with the progress."""
        if not access.preparing:
            return access
        deadline = asyncio.get_running_loop().time() + self.extract_wait_timeout
        self.log.info("Workspace %s/%s: waiting for the extracts of %s", self.user.name, self.name,
                      ", ".join(d.slug for d in access.preparing))
        try:
            while access.preparing:
                self.preparing_progress = access.preparing_progress
                try:
                    await self._in_pool(self._enqueue_missing_extracts, access)
                except (OperationalError, InterfaceError) as unreachable:
                    raise self._catalogue_unavailable(unreachable) from None
                if asyncio.get_running_loop().time() > deadline:
                    await self.audit(AuditAction.WORKSPACE_REFUSED, reason="extract_not_ready",
                                     progress=access.preparing_progress)
                    raise WorkspaceRefused(translate(self.language, DATA_STILL_BEING_PREPARED,
                                                     progress=access.preparing_progress, stewards=access.stewards))
                await asyncio.sleep(self.extract_poll_seconds)
                try:
                    access, _ = await self._in_pool(self._workspace_access)
                except AccessRefused as refusal:
                    raise await self.refuse(refusal) from None
                except (OperationalError, InterfaceError) as unreachable:
                    raise self._catalogue_unavailable(unreachable) from None
        finally:
            self.preparing_progress = None
        return access

    def preparing_message(self, language: str) -> str | None:
        """The spawn page's line while the extracts are prepared, or None when nothing is."""
        if self.preparing_progress is None:
            return None
        return translate(language, DATA_BEING_PREPARED, progress=self.preparing_progress)

    async def _in_pool(self, function, *args):
        return await asyncio.wrap_future(self.executor.submit(function, *args))

    def _audit(self, action: AuditAction, actor: str | None = None, **details) -> None:
        with session_scope(self.catalogue_url) as session:
            audit.record(session, actor or self.user.name, action, project=self.name or None, details=details)

    async def audit(self, action: AuditAction, actor: str | None = None, **details) -> None:
        await self._in_pool(lambda: self._audit(action, actor, **details))

    async def refuse(self, refusal: AccessRefused, error: object | None = None) -> WorkspaceRefused:
        """Log and audit a refusal; return the error to raise, in the person's language."""
        log = self.log.error if error else self.log.warning  # a broken site, not a person's mistake
        log("Refused workspace %s/%s: %s", self.user.name, self.name, error or refusal)
        await self.audit(AuditAction.WORKSPACE_REFUSED, reason=refusal.reason.value, facts=refusal.params)
        return WorkspaceRefused(explain(refusal, self.language))

    async def check_site(self) -> None:
        """What the engine's hosts must have in place before any workspace starts (the host
        firewall on one machine); raise ``WorkspaceRefused``. Nothing by default."""

    def _catalogue_unavailable(self, unreachable: OperationalError | InterfaceError) -> CatalogueUnavailable:
        """The 503 for a start while the catalogue's database is unreachable (no audit row either:
        it is the same database)."""
        self.log.error("Start of %s/%s refused: the catalogue is unreachable: %s", self.user.name, self.name,
                       getattr(unreachable, "orig", None) or unreachable)
        return CatalogueUnavailable(translate(self.language, CATALOGUE_UNREACHABLE))

    async def planned_workspace(self) -> tuple[WorkspaceAccess, WorkspaceImage, WorkspacePlan]:
        """``_planned_workspace``; a refused start leaves no server behind (``_forget_refused``)."""
        REFUSED_STARTS.forget(self.user.name, self.name)
        try:
            return await self._planned_workspace()
        except (WorkspaceRefused, CatalogueUnavailable) as refusal:
            asyncio.ensure_future(self._forget_refused(refusal))
            raise

    async def _forget_refused(self, refusal: web.HTTPError) -> None:
        """Remove the named server a refused start leaves: JupyterHub keeps its row after a failed
        start, and /hub/admin lists it with an "Access Server" that leads to a 403. Once the hub is
        done with the start (it stops the spawner after a failure), the row goes as the hub's own
        ``DELETE /users/<user>/servers/<name>`` with ``remove`` does it; its pages then show the
        refusal from ``REFUSED_STARTS``."""
        for _ in range(600):
            if not (self._start_pending or self._stop_pending):
                break
            await asyncio.sleep(0.1)
        # the spawn page, if the browser is on it, shows the refusal from the failed start meanwhile
        await asyncio.sleep(self.forget_refused_after)
        user = self.user
        if not self.name or self.active or user.spawners.get(self.name) is not self:
            return  # the default server, or started again meanwhile
        self.log.info("Forgetting %s/%s: its start was refused", user.name, self.name)
        REFUSED_STARTS.remember(user.name, self.name, refusal)
        user.db.delete(self.orm_spawner)
        user.spawners.pop(self.name, None)
        user.db.commit()

    async def _planned_workspace(self) -> tuple[WorkspaceAccess, WorkspaceImage, WorkspacePlan]:
        """Everything before the engine is asked: refuse an image chosen in the request, read
        the catalogue, check the pinned image and the site, wait for the extracts, make the plan,
        verify the extracts and prepare the folders. Each refusal is one audit row and a ``WorkspaceRefused``."""
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
            raise await self.refuse(refusal) from None
        except (OperationalError, InterfaceError) as unreachable:
            raise self._catalogue_unavailable(unreachable) from None
        # a site missing its walls refuses at once, not after the wait for the extracts
        await self.check_site()
        access = await self.wait_for_extracts(access)
        plan = make_workspace_plan(
            access,
            instance=self.instance,
            image=image.digest,
            extracts_root=Path(self.extracts_root),
            workspaces_root=Path(self.workspaces_root),
            default_mem_limit=self.default_mem_limit,
            default_cpu_limit=self.default_cpu_limit,
            pids_limit=self.pids_limit,
            ui_language=self.language,
            read_max_bytes=self.read_max_bytes,
            quotas=StorageQuotas.of(access.project_quota, access.home_quota, access.tmp_quota, StorageQuotas(
                size_bytes(self.project_quota), size_bytes(self.home_quota), size_bytes(self.tmp_quota))),
        )
        try:
            await self._in_pool(self._verify_extracts, access)
        except DatasetIntegrityError as error:
            refusal = AccessRefused(Refusal.DATASET_INTEGRITY, dataset=error.dataset, problem=error.problem,
                                    stewards=access.stewards)
            raise await self.refuse(refusal, error) from None
        if self.mounts_quota_volumes:
            await self._mount_storage(plan)
        try:
            await self._in_pool(docker_adapter.prepare_directories, plan)
        except docker_adapter.UnsafeWorkspaceFolder as error:
            refusal = AccessRefused(Refusal.UNSAFE_FOLDER, project=access.project, folder=error.folder)
            raise await self.refuse(refusal, error) from None
        return access, image, plan

    async def _mount_storage(self, plan: WorkspacePlan) -> None:
        try:
            await self._in_pool(lambda: storage.ensure_volumes(
                plan.quota_volumes, preallocate=self.storage_preallocate, reserve=size_bytes(self.storage_reserve)))
        except storage.StorageRefused as error:
            refusal = AccessRefused(Refusal.STORAGE_UNAVAILABLE, project=plan.project, problem=str(error))
            raise await self.refuse(refusal, error) from None

    async def audit_start(self, access: WorkspaceAccess, image: WorkspaceImage, plan: WorkspacePlan,
                          **where: object) -> None:
        """The start's audit row: the container, the image and the exact mount set it got."""
        await self.audit(
            AuditAction.WORKSPACE_START,
            container=self.container_id[:12],
            image=plan.image,
            image_name=f"{image.name}:{image.version}",
            mounts=[{"source": str(m.source), "target": str(m.target), "read_only": m.read_only}
                    for m in plan.mounts],
            datasets={d.slug: d.version for d in access.datasets},
            extracts={d.slug: {"id": d.extract.id, "root_hash": d.extract.root_hash}
                      for d in access.datasets if d.extract is not None},
            **where,
        )

    def _exit_state(self) -> dict:
        """How the container ended, if it has (an out-of-memory kill, a crash), before it is removed."""
        try:
            state = self.client.inspect_container(self.container_id)["State"]
        except Exception:  # gone already, or never made: nothing to tell
            return {}
        if state.get("Running"):
            return {}
        return {"exit_code": state.get("ExitCode"), "oom_killed": bool(state.get("OOMKilled"))}

    def with_package_index(self, env: dict[str, str], host: str | None) -> dict[str, str]:
        """``env`` plus pip's settings for the package index at ``host``. The index knows the
        workspace by this start's own token, so they are added here rather than in the plan."""
        if self.package_index_port and host:
            env.update(package_index_env(host, self.package_index_port, self.api_token))
        return env

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
        container = self.container_id[:12]
        ended = await self._in_pool(self._exit_state) if self.container_id else {}
        await super().stop(now=now)
        # The spawner cannot tell who asked (the person, the idle culler, the reconciler, an admin):
        # the hub is the actor, the person a detail; the reconciler records its own reason apart.
        await self.audit(AuditAction.WORKSPACE_STOP, actor="hub", user=self.user.name, container=container, **ended)
        if self.network_name.startswith(f"tre-{self.instance}-"):
            await self._remove_network(self.network_name)

    async def _remove_network(self, name: str) -> None:
        await self._in_pool(self.remove_network_if_unused, name)

    def remove_network_if_unused(self, name: str) -> bool:
        """Remove a project's network once its last workspace is gone (blocking: in the pool)."""
        return docker_adapter.remove_network_if_unused(self.client, name)
