"""Concurrent spawns: N people (50 by default) each start a project workspace at the same moment.

    .venv/bin/python benchmarks/concurrent_spawns.py [--users 50] [--slots N] [--no-plain]

For ProjectSpawner (its start queue of ``--slots`` slots, by default the spawner's: two per core) and then for a
plain DockerSpawner on JupyterHub's default timeouts, prints: how many became ready and the time
until the last did, the hub API's p50/p95 latency from a prober polling it during the storm, and the
memory of an idle workspace (Docker's stats once the storm has settled). Before the storm, one quiet
start of ProjectSpawner measures one start's CPU cost (the container's cgroup CPU time until it is
ready); the ideal storm would take N x that cost / cores, printed beside the measured time with
their ratio. The machine's load average is printed with the figures: other work skews them.

The people, projects and grants are loaded with the catalogue's own loader (``load_catalogue``) into
the benchmark hub's catalogue. Each hub runs on free loopback ports with its own state folder and
instance label; everything it creates is removed by that label at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import docker
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.spawn import benchmark_hub, wait  # noqa: E402
from datasets.catalogue import CatalogueFile, GrantEntry, MemberEntry, PersonEntry, ProjectEntry, load_catalogue  # noqa: E402
from tre_core.db import session_scope  # noqa: E402
from tre_core.settings import TRESettings  # noqa: E402
from spawner.project_spawner import default_concurrent_starts  # noqa: E402
from tests.integration.conftest import Hub  # noqa: E402

PEOPLE_PER_PROJECT = 10
GRANTED = ("claims", "hospital_stays")
QUEUE_STORM_LIMIT = 1800.0  # seconds: the queue's own start_timeout
PLAIN_SERVER = "cardio-risk"  # the plain hub's network is that project's (benchmarks/spawn.py)


# --- pure helpers (unit-tested) -------------------------------------------------------------------

def usernames(count: int) -> list[str]:
    return [f"bench{number:03d}" for number in range(1, count + 1)]


def project_of(index: int) -> str:
    """Person ``index`` (0-based) belongs to project bench-p<index // 10 + 1>."""
    return f"bench-p{index // PEOPLE_PER_PROJECT + 1}"


def benchmark_catalogue(count: int, today: dt.date) -> CatalogueFile:
    """``count`` people in projects of ten, each project active and granted the demo's claims and
    hospital stays: what a day of the Health Data Hub looks like, at a small scale."""
    people = usernames(count)
    projects: dict[str, list[str]] = {}
    for index, person in enumerate(people):
        projects.setdefault(project_of(index), []).append(person)
    starts, ends = today - dt.timedelta(days=30), today + dt.timedelta(days=365)
    return CatalogueFile(
        # accredited researchers (safe-researcher training on record): a start needs it
        people=[PersonEntry(username=p, display_name=f"Benchmark person {p[5:]}", accredited_on=starts,
                            accredited_until=ends) for p in people],
        projects=[
            ProjectEntry(
                slug=slug, title=f"Benchmark project {slug}", principal_investigator=members[0],
                approval_reference=f"BENCH-{slug}", starts_on=starts, ends_on=ends, status="active",
                members=[MemberEntry(username=m) for m in members],
                grants=[GrantEntry(dataset=d, starts_on=starts, ends_on=ends, approved_by="steward",
                                   approval_reference=f"BENCH-{slug}-{d}") for d in GRANTED],
            )
            for slug, members in projects.items()
        ],
    )


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest value with at least ``fraction`` of them at or below."""
    if not values:
        raise ValueError("no values to take a percentile of")
    ordered = sorted(values)
    rank = math.ceil(round(fraction * len(ordered), 9))
    return ordered[min(max(rank, 1), len(ordered)) - 1]


def ideal_storm_seconds(users: int, start_cpu_seconds: float, cores: int) -> float:
    """The shortest a storm can take if starts are CPU-bound and the cores are never idle."""
    return users * start_cpu_seconds / cores


def memory_in_use(stats: dict) -> int:
    """Bytes a container uses as ``docker stats`` counts them: its cgroup's usage without the page
    cache it can give back (inactive files; ``cache`` on cgroup v1)."""
    memory = stats["memory_stats"]
    details = memory.get("stats", {})
    reclaimable = details.get("inactive_file", details.get("total_inactive_file", details.get("cache", 0)))
    return memory["usage"] - reclaimable


def cpu_seconds(stats: dict) -> float:
    return stats["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9


def busy_fraction(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Share of the host's CPU time that was busy between two ``host_cpu_ticks`` readings."""
    busy, total = after[0] - before[0], after[1] - before[1]
    return busy / total if total else 0.0


def host_cpu_ticks(stat_line: str | None = None) -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot, from the first line of /proc/stat."""
    if stat_line is None:
        with open("/proc/stat") as stat:
            stat_line = stat.readline()
    values = [int(v) for v in stat_line.split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is counted in user time already
    return total - idle, total


# --- the storm ------------------------------------------------------------------------------------

@dataclass
class Storm:
    kind: str
    users: int
    ready: int = 0
    failed: int = 0
    seconds_to_all_ready: float | None = None
    seconds_to_last_outcome: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    idle_memory_mib: float | None = None
    host_busy: float = 0.0  # share of the host's CPU busy during the storm (all work, not only ours)
    workspaces_cpu_s: float = 0.0  # CPU time of the storm's containers, read once it is over


class Prober(threading.Thread):
    """Polls the hub's API during the storm, as a page or a service would, and records latencies."""

    def __init__(self, api: str, headers: dict[str, str], user: str) -> None:
        super().__init__(daemon=True)
        self.url, self.headers = f"{api}/users/{user}", headers
        self.latencies_ms: list[float] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            began = time.perf_counter()
            try:
                requests.get(self.url, headers=self.headers, timeout=30)
                self.latencies_ms.append((time.perf_counter() - began) * 1000)
            except requests.RequestException:
                self.latencies_ms.append(30_000.0)
            self.halt.wait(0.1)


def servers(api: str, headers: dict[str, str]) -> dict[str, dict]:
    """Every person's server that is starting or running, by person. The hub's API answers in
    pages (50 people unless asked for more): without following them, the servers of everyone past
    the first page were never seen (the load benchmark's starters, signed up after 200 browsers,
    looked done at once)."""
    found, offset = {}, 0
    while True:
        reply = requests.get(f"{api}/users", params={"state": "active", "offset": offset, "limit": 200},
                             headers={**headers, "Accept": "application/jupyterhub-pagination+json"}, timeout=60)
        reply.raise_for_status()
        page = reply.json()
        for user in page["items"]:
            for server in user.get("servers", {}).values():
                found[user["name"]] = server
        if not page["_pagination"].get("next"):
            return found
        offset = page["_pagination"]["next"]["offset"]


def run_storm(hub: Hub, token: str, kind: str, people: list[str], names: dict[str, str], limit: float) -> Storm:
    """All start requests at once, then wait until every start has an outcome (ready, or gone after
    a failure) or ``limit`` seconds."""
    api, headers = f"{hub.url}/hub/api", {"Authorization": f"token {token}"}
    requests.post(f"{api}/users", headers=headers, json={"usernames": people}, timeout=60)
    storm = Storm(kind, len(people))
    prober = Prober(api, headers, people[0])
    prober.start()
    ticks = host_cpu_ticks()
    began = time.perf_counter()
    barrier = threading.Barrier(len(people))

    def start(person: str) -> None:
        barrier.wait()
        requests.post(f"{api}/users/{person}/servers/{names[person]}", headers=headers, timeout=limit)

    with ThreadPoolExecutor(len(people)) as pool:
        for person in people:
            pool.submit(start, person)
        ready_at: dict[str, float] = {}
        while time.perf_counter() - began < limit:
            now = servers(api, headers)
            for person, server in now.items():
                if server.get("ready") and person not in ready_at:
                    ready_at[person] = time.perf_counter() - began
            pending = [p for p, s in now.items() if s.get("pending") == "spawn"]
            if len(ready_at) == len(people) or (not pending and time.perf_counter() - began > 10):
                break
            time.sleep(1)
    storm.seconds_to_last_outcome = time.perf_counter() - began
    storm.host_busy = busy_fraction(ticks, host_cpu_ticks())
    storm.workspaces_cpu_s = workspaces_cpu_seconds(hub.client, hub.instance)
    prober.halt.set()
    prober.join()
    storm.latencies_ms = prober.latencies_ms
    storm.ready = len(ready_at)
    storm.failed = len(people) - storm.ready
    if storm.ready == len(people):
        storm.seconds_to_all_ready = max(ready_at.values())
    return storm


def container_stats(client: docker.DockerClient, instance: str) -> list[dict]:
    """Docker's stats of each running container of the instance; one removed meanwhile (a failed
    start the hub cleans up) is skipped."""
    found = []
    for container in client.containers.list(filters={"label": f"tre.instance={instance}"}):
        try:
            found.append(client.api.stats(container.id, stream=False, one_shot=True))
        except (docker.errors.NotFound, ValueError):  # ValueError: an empty reply, the container going
            pass
    return found


def workspaces_cpu_seconds(client: docker.DockerClient, instance: str) -> float:
    return sum(cpu_seconds(stats) for stats in container_stats(client, instance))


def idle_memory_mib(client: docker.DockerClient, instance: str, settle_s: float = 30) -> float | None:
    """The median memory of the storm's workspaces once they have sat idle for ``settle_s``."""
    time.sleep(settle_s)
    used = [memory_in_use(stats) for stats in container_stats(client, instance)]
    return statistics.median(used) / 2**20 if used else None


def stop_everyone(hub: Hub, token: str, people: list[str], names: dict[str, str]) -> None:
    api, headers = f"{hub.url}/hub/api", {"Authorization": f"token {token}"}
    with ThreadPoolExecutor(10) as pool:
        list(pool.map(lambda p: requests.delete(f"{api}/users/{p}/servers/{names[p]}", headers=headers,
                                                timeout=300), people))
    wait(lambda: not servers(api, headers), 600, "every server stopped", interval=1)


def quiet_start_cpu_seconds(hub: Hub, token: str, client: docker.DockerClient, person: str, project: str) -> tuple[float, float]:
    """One start alone: its container's CPU time (cgroup) when the hub first sees it ready, and
    the wall time from the request."""
    api, headers = f"{hub.url}/hub/api", {"Authorization": f"token {token}"}
    requests.post(f"{api}/users", headers=headers, json={"usernames": [person]}, timeout=60)
    began = time.perf_counter()
    reply = requests.post(f"{api}/users/{person}/servers/{project}", headers=headers, timeout=300)
    assert reply.status_code in (201, 202), reply.text
    wait(lambda: servers(api, headers).get(person, {}).get("ready"), 300, "the quiet start", interval=0.1)
    wall = time.perf_counter() - began
    container = client.containers.list(filters={"label": [f"tre.instance={hub.instance}", f"tre.user={person}"]})[0]
    cost = cpu_seconds(client.api.stats(container.id, stream=False, one_shot=True))
    stop_everyone(hub, token, [person], {person: project})
    return cost, wall


def load_people(hub: Hub, count: int) -> dict[str, str]:
    """Load the benchmark's people and projects into the hub's catalogue; returns person -> project."""
    settings = TRESettings(home=hub.home, database_url=hub.env.get("TRE_DATABASE_URL"))
    with session_scope(settings.catalogue_url) as session:
        load_catalogue(session, benchmark_catalogue(count, dt.date.today()), settings.data_root)
    # their extracts, as the extraction service builds them once grants are in force: without them
    # each first start would wait for that service, which is not the storm to measure
    hub.tre("extracts", "build")
    return {person: project_of(index) for index, person in enumerate(usernames(count))}


def report(storm: Storm, cores: int, start_cost: float | None = None) -> None:
    label = {"project": "ProjectSpawner (queue)", "plain": "plain DockerSpawner"}[storm.kind]
    total = f"{storm.seconds_to_all_ready:.1f} s" if storm.seconds_to_all_ready is not None else "never"
    print(f"{label}: {storm.ready}/{storm.users} ready; all ready after {total} "
          f"(last outcome at {storm.seconds_to_last_outcome:.1f} s), {storm.failed} not ready")
    if storm.latencies_ms:
        print(f"  hub API during the storm: p50 {percentile(storm.latencies_ms, 0.5):.0f} ms, "
              f"p95 {percentile(storm.latencies_ms, 0.95):.0f} ms ({len(storm.latencies_ms)} probes)")
    print(f"  host CPU busy during the storm: {storm.host_busy:.0%} of {cores} cores (everyone's work); "
          f"the storm's containers used {storm.workspaces_cpu_s:.0f} CPU s")
    if storm.idle_memory_mib is not None:
        print(f"  idle workspace memory (median): {storm.idle_memory_mib:.0f} MiB")
    if start_cost is not None and storm.seconds_to_all_ready is not None:
        ideal = ideal_storm_seconds(storm.users, start_cost, cores)
        print(f"  ideal {storm.users} x {start_cost:.2f} CPU s / {cores} cores = {ideal:.1f} s; "
              f"measured / ideal = {storm.seconds_to_all_ready / ideal:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--slots", type=int, default=default_concurrent_starts(),
                        help="ProjectSpawner.concurrent_starts (default: the spawner's, two per core)")
    parser.add_argument("--no-plain", action="store_true", help="skip the plain DockerSpawner storm")
    parser.add_argument("--plain-only", action="store_true", help="only the plain DockerSpawner storm")
    args = parser.parse_args()
    if args.users < 1 or args.slots < 1:
        parser.error("--users and --slots must be at least 1")
    client = docker.from_env(timeout=300)
    cores = os.cpu_count() or 1
    print(f"{args.users} people, {args.slots} start slots, {cores} cores, load average before "
          f"{'/'.join(f'{x:.2f}' for x in os.getloadavg())}")

    if not args.plain_only:
        project_storm(client, args.users, args.slots, cores)
    if not args.no_plain:
        plain_storm(client, args.users, cores)
    print(f"load average after {'/'.join(f'{x:.2f}' for x in os.getloadavg())}")


def project_storm(client: docker.DockerClient, users: int, slots: int, cores: int) -> None:
    """One quiet start to measure its CPU, then the storm, with ProjectSpawner and its queue."""
    hub, token = benchmark_hub(client, "project", {"TRE_CONCURRENT_STARTS": str(slots),
                                                   "TRE_START_TIMEOUT": str(int(QUEUE_STORM_LIMIT))})
    try:
        names = load_people(hub, users + 1)
        quiet_person = usernames(users + 1)[-1]
        people = [p for p in names if p != quiet_person]
        hub.start_process()
        cost, quiet_wall = quiet_start_cpu_seconds(hub, token, client, quiet_person, names[quiet_person])
        print(f"one quiet start: {quiet_wall:.2f} s to ready, {cost:.2f} CPU s in its container")
        storm = run_storm(hub, token, "project", people, names, QUEUE_STORM_LIMIT)
        storm.idle_memory_mib = idle_memory_mib(client, hub.instance)
        report(storm, cores, cost)
        stop_everyone(hub, token, people, names)
    finally:
        hub.close()


def plain_storm(client: docker.DockerClient, users: int, cores: int) -> None:
    """The same storm with a plain DockerSpawner on JupyterHub's default timeouts."""
    plain, token = benchmark_hub(client, "plain")
    try:
        plain.start_process()
        people = usernames(users)
        storm = run_storm(plain, token, "plain", people, dict.fromkeys(people, PLAIN_SERVER), 600)
        storm.idle_memory_mib = idle_memory_mib(client, plain.instance)
        report(storm, cores)
    finally:
        plain.close()

if __name__ == "__main__":
    main()
