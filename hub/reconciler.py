"""Keeps running workspaces in step with the catalogue, as a JupyterHub service.

At start-up (after a hub crash, say) and then every ``--interval`` seconds it:

1. asks the hub for every running or starting project server and stops, through the hub's API,
   each one the catalogue no longer allows (project suspended or ended, member removed), that
   mounts a dataset whose grant has ended, or an extract since replaced (the grant changed, people
   opted out), so that access ends within a minute of the decision;
2. removes workspace containers of this installation that the hub no longer knows (left behind
   by a crash), by their labels; on a Docker Swarm manager, workspace services too (their tasks
   run on other nodes, out of sight of the manager's container list).

It also keeps one hub group per open project and one of output checkers, for the hub's admin
page. Every stop is one audit row with its reason. Run by the hub: ``python -m hub.reconciler``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import docker
import requests
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from datasets import anchor, audit
from datasets.access import AccessRefused, is_accredited_checker, workspace_access
from datasets.audit import AuditAction
from datasets.catalogue import known_people
from datasets.models import Project, ProjectStatus
from tre_core import labels as tre_labels
from tre_core.db import session_scope
from tre_core.settings import TRESettings

log = logging.getLogger("tre.reconciler")


class Hub:
    def __init__(self, api_url: str, token: str) -> None:
        self.api_url = api_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {token}"

    def running_servers(self) -> set[tuple[str, str]]:
        """(user, server name) of every server that is running or starting."""
        servers, offset = set(), 0
        while True:
            reply = self.session.get(f"{self.api_url}/users", params={"state": "active", "offset": offset, "limit": 200},
                                     headers={"Accept": "application/jupyterhub-pagination+json"}, timeout=30)
            reply.raise_for_status()
            page = reply.json()
            for user in page["items"]:
                servers.update((user["name"], name) for name in user.get("servers", {}))
            if not page["_pagination"].get("next"):
                return servers
            offset = page["_pagination"]["next"]["offset"]

    def users(self) -> set[str]:
        return {u["name"] for u in self._pages("users")}

    def groups(self) -> dict[str, set[str]]:
        return {g["name"]: set(g["users"]) for g in self._pages("groups")}

    def _pages(self, path: str) -> list[dict]:
        items, offset = [], 0
        while True:
            reply = self.session.get(f"{self.api_url}/{path}", params={"offset": offset, "limit": 200},
                                     headers={"Accept": "application/jupyterhub-pagination+json"}, timeout=30)
            reply.raise_for_status()
            page = reply.json()
            items.extend(page["items"])
            if not page["_pagination"].get("next"):
                return items
            offset = page["_pagination"]["next"]["offset"]

    def set_group(self, name: str, current: set[str] | None, wanted: set[str]) -> None:
        if current is None:
            self.session.post(f"{self.api_url}/groups/{name}", timeout=30).raise_for_status()
            current = set()
        if wanted - current:
            self.session.post(f"{self.api_url}/groups/{name}/users", json={"users": sorted(wanted - current)},
                              timeout=30).raise_for_status()
        if current - wanted:
            self.session.delete(f"{self.api_url}/groups/{name}/users", json={"users": sorted(current - wanted)},
                                timeout=30).raise_for_status()

    def stop(self, user: str, server: str) -> None:
        reply = self.session.delete(f"{self.api_url}/users/{user}/servers/{server}", timeout=60)
        if reply.status_code not in (202, 204, 404):
            reply.raise_for_status()


def reconcile_once(hub: Hub, client: docker.DockerClient, settings: TRESettings) -> list[tuple[str, str, str]]:
    """One pass; returns what was stopped as (user, project, reason)."""
    today = dt.date.today()
    stopped = []
    labels = tre_labels.workspaces_filter(settings.instance)
    mounted = {(w.labels.get(tre_labels.USER), w.labels.get(tre_labels.PROJECT)): Mounted(
                   set(filter(None, w.labels.get(tre_labels.DATASETS, "").split(","))),
                   tre_labels.parse_extracts(w.labels.get(tre_labels.EXTRACTS)))
               for w in workspaces(client, labels)}
    for user, project in sorted(hub.running_servers()):
        try:
            reason = _why_stop(settings, user, project, mounted.get((user, project), Mounted(set(), {})), today)
            if reason is None:
                continue
            log.warning("Stopping %s/%s: %s", user, project, reason)
            hub.stop(user, project)
            _audit(settings, user, project, "revoked", reason)
            stopped.append((user, project, reason))
        except Exception:  # one server the hub cannot stop yet must not hold back the others
            log.exception("Could not reconcile %s/%s; trying again at the next pass", user, project)
    # Only now list containers: one created after the list of servers was taken is not an orphan.
    running = hub.running_servers()
    for workspace in workspaces(client, labels, stopped_too=True):
        user, project = workspace.labels.get(tre_labels.USER), workspace.labels.get(tre_labels.PROJECT)
        if (user, project) not in running:
            log.warning("Removing orphaned workspace %s %s of %s/%s", workspace.kind, workspace.id, user, project)
            workspace.remove()
            _audit(settings, user or "?", project, "orphan", "not known to the hub", **{workspace.kind: workspace.id})
            stopped.append((user, project, "orphan"))
    return stopped


@dataclass(frozen=True)
class Workspace:
    """A workspace as the engine shows it: a container on one host, a service on a swarm."""
    kind: str  # "container" or "service": the audit detail that names it
    id: str
    labels: dict[str, str]
    remove: Callable[[], None]


def workspaces(client: docker.DockerClient, labels: list[str], *, stopped_too: bool = False) -> list[Workspace]:
    """This installation's workspaces on the engine the hub drives. On a swarm manager the
    services are the workspaces: their task containers run on other nodes (and one on the manager
    itself is the service's, removed with it)."""
    found = [Workspace("container", c.short_id, c.labels, lambda c=c: c.remove(force=True))
             for c in client.containers.list(all=stopped_too, filters={"label": labels})
             if "com.docker.swarm.service.id" not in c.labels]
    if client.info().get("Swarm", {}).get("ControlAvailable"):
        found += [Workspace("service", s.short_id, s.attrs["Spec"].get("Labels", {}), s.remove)
                  for s in client.services.list(filters={"label": labels})]
    return found


@dataclass(frozen=True)
class Mounted:
    """What a running workspace mounts, from its labels: dataset slugs, and extract id of each."""
    datasets: set[str]
    extracts: dict[str, int]


def _why_stop(settings: TRESettings, user: str, project: str, mounted: Mounted, today: dt.date) -> str | None:
    """Why the catalogue no longer allows this running workspace, or None if it does."""
    try:
        with session_scope(settings.catalogue_url) as session:
            granted = workspace_access(session, user, project, today).datasets
    except AccessRefused as refusal:
        return refusal.reason.value
    allowed = {d.slug for d in granted}
    # a grant that ended while the workspace ran: stop it; the next start mounts the rest
    ended = mounted.datasets - allowed
    if ended:
        return f"grant_ended:{','.join(sorted(ended))}"
    # an extract replaced (the grant changed, opt-outs left people out): what the workspace holds is
    # no longer what the project may see; the next start mounts the new one (or waits for it)
    current = {d.slug: d.extract.id if d.extract is not None and d.extract.ready else None for d in granted}
    replaced = sorted(slug for slug, extract_id in mounted.extracts.items() if current.get(slug) != extract_id)
    return f"extract_replaced:{','.join(replaced)}" if replaced else None


CHECKERS_GROUP = "output-checkers"
PROJECT_GROUP_PREFIX = "project-"


def sync_groups(hub: Hub, settings: TRESettings) -> None:
    """One hub group per open project and one of output checkers in date, so that the hub's admin
    page shows who is where. Only people the hub knows (who signed in once) can be in a group."""
    today = dt.date.today()
    with session_scope(settings.catalogue_url) as session:
        wanted = {f"{PROJECT_GROUP_PREFIX}{project.slug}": {m.username for m in project.memberships}
                  for project in session.scalars(select(Project).where(Project.status != ProjectStatus.CLOSED))}
        wanted[CHECKERS_GROUP] = {name for name in known_people(session) if is_accredited_checker(session, name, today)}
    known, current = hub.users(), hub.groups()
    for name, members in wanted.items():
        members &= known
        if current.get(name) != members:
            hub.set_group(name, current.get(name), members)
    for name, members in current.items():
        if name.startswith(PROJECT_GROUP_PREFIX) and name not in wanted and members:
            hub.set_group(name, members, set())


def _audit(settings: TRESettings, user: str, project: str | None, kind: str, reason: str, **extra) -> None:
    """The stop's row. The server is already gone (a later pass would not see it again), so a
    database busy with another writer, or restarting, is waited for a little rather than lose it."""
    for attempt in range(5):
        try:
            with session_scope(settings.catalogue_url) as session:
                audit.record(session, "reconciler", AuditAction.WORKSPACE_STOP, project=project,
                             details={"user": user, "why": kind, "reason": reason, **extra})
            return
        except OperationalError:
            if attempt == 4:
                log.error("The stop of %s/%s (%s) could not be written to the audit log; the database "
                          "refused it five times", user, project, reason)
                raise
            log.warning("audit row for %s/%s not written yet (database busy); trying again", user, project)
            time.sleep(0.5 * 2 ** attempt)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between passes")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="[%(levelname)1.1s %(asctime)s reconciler] %(message)s")
    hub = Hub(os.environ["JUPYTERHUB_API_URL"], os.environ["JUPYTERHUB_API_TOKEN"])
    client = docker.from_env(timeout=60)
    settings = TRESettings()
    while True:
        try:
            reconcile_once(hub, client, settings)
            sync_groups(hub, settings)
            anchor.checkpoint_if_due(settings.catalogue_url, settings.secrets_dir, settings.audit_checkpoint_interval)
        except (requests.RequestException, docker.errors.DockerException) as exc:
            log.error("pass failed, trying again in %ss: %s", args.interval, exc)
        except Exception:  # the database restarting, say: the next pass may succeed
            log.exception("pass failed, trying again in %ss", args.interval)
        time.sleep(args.interval)


if __name__ == "__main__":
    main()
