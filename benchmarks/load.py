"""Load: N signed-in people (200 by default) browse the catalogue and egress pages and the egress
API while 20 workspaces start; latency per endpoint against the same requests with no load.

    .venv/bin/python benchmarks/load.py [--people 200] [--starts 20] [--think 5] [--pages 200] [--idle-rounds 20]
                                        [--database postgresql|sqlite]

Everything is on loopback, on a hub of its own (free ports, its own state folder and instance
label, removed at the end), and every loop is bounded. The hub's own state and the catalogue are in
PostgreSQL, as the Ansible deployment runs them (two fresh databases on the test server,
``TRE_TEST_POSTGRES_URL``, dropped at the end), or with ``--database sqlite`` in the demo's files.

First the idle figures: one person, one request at a time, ``--idle-rounds`` rounds of the
endpoints below, nothing starting. Then the load:
``--starts`` workspaces start through the hub's API while every person browses as people do, one
page at a time, reading each for a random time around ``--think`` seconds (from half to one and a
half times it; the first page within the first ``--think`` seconds, so that they do not all click
at the same instant), going round the endpoints, until the starts are done (at least one page
each, at most ``--pages``). 200 people reading each page 5 s on average ask for about 40 pages a
second, more than a TRE's 200 signed-in researchers do. Prints the pages asked for each second,
p50/p95/p99, errors and 5xx per endpoint, and the ratio of the loaded p95 to the idle p95 (goal:
at most 3, no error, no 5xx). The machine's load average is printed with the figures: other work
skews them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import docker

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.concurrent_spawns import load_people, percentile, servers, stop_everyone  # noqa: E402
from benchmarks.spawn import benchmark_hub  # noqa: E402
from tests.integration.databases import Databases  # noqa: E402

ENDPOINTS = {
    "hub home": "/hub/home",
    "catalogue": "/services/catalogue/",
    "my projects": "/services/catalogue/projects",
    "egress pages": "/services/egress/",
    "egress API": "/services/egress/api/requests",
}
GOAL_RATIO = 3.0


@dataclass
class Figures:
    latencies_ms: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in ENDPOINTS})
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ENDPOINTS, 0))
    server_errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ENDPOINTS, 0))
    asked: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ENDPOINTS, 0))


async def sign_in(url: str, username: str, password: str) -> aiohttp.ClientSession:
    """A person's browser: the hub's login form, then each service's OAuth round trip once."""
    # unsafe: keep cookies set by an IP address (127.0.0.1), as a browser does
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                    timeout=aiohttp.ClientTimeout(total=120))
    async with session.get(f"{url}/hub/login") as reply:
        reply.raise_for_status()
    xsrf = next(c.value for c in session.cookie_jar if c.key == "_xsrf")
    async with session.post(f"{url}/hub/login", data={"username": username, "password": password,
                                                      "_xsrf": xsrf}) as reply:
        reply.raise_for_status()
        if not str(reply.url).endswith("/hub/home"):
            raise RuntimeError(f"the sign-in of {username} landed on {reply.url}")
    for service in ("/services/catalogue/", "/services/egress/"):
        async with session.get(url + service) as reply:
            reply.raise_for_status()
    return session


async def one_request(url: str, session: aiohttp.ClientSession, name: str, figures: Figures) -> None:
    figures.asked[name] += 1
    began = time.perf_counter()
    try:
        async with session.get(url + ENDPOINTS[name], allow_redirects=False) as reply:
            await reply.read()
            status = reply.status
    except (aiohttp.ClientError, asyncio.TimeoutError):
        figures.errors[name] += 1
        return
    figures.latencies_ms[name].append((time.perf_counter() - began) * 1000)
    if status >= 500:
        figures.server_errors[name] += 1
    if status != 200:  # a redirect to sign in again counts: the person did not get the page
        figures.errors[name] += 1


async def one_round(url: str, session: aiohttp.ClientSession, figures: Figures) -> None:
    for name in ENDPOINTS:
        await one_request(url, session, name, figures)


async def browse(url: str, sessions: list[aiohttp.ClientSession], pages: int, think: float, figures: Figures,
                 starts: asyncio.Task, rng: random.Random) -> None:
    """Each person reads a page for a random time around ``think`` s, then opens the next one,
    round the endpoints (each person from another one), while the starts are under way: at
    least one page, at most ``pages``."""
    names = list(ENDPOINTS)

    async def person(index: int, session: aiohttp.ClientSession) -> None:
        await asyncio.sleep(rng.uniform(0, think))
        for done in range(pages):
            if done and starts.done():
                return
            await one_request(url, session, names[(index + done) % len(names)], figures)
            await asyncio.sleep(rng.uniform(think / 2, think * 3 / 2))

    await asyncio.gather(*(person(i, s) for i, s in enumerate(sessions)))


async def start_workspaces(url: str, token: str, names: dict[str, str]) -> tuple[float, int]:
    """Ask for every start at once through the API; return when each has its outcome (or after
    600 s): the seconds that took and how many are ready."""
    headers = {"Authorization": f"token {token}"}
    began = time.perf_counter()
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=600)) as api:
        async with api.post(f"{url}/hub/api/users", json={"usernames": list(names)}) as reply:
            await reply.read()

        async def start(person: str) -> None:
            async with api.post(f"{url}/hub/api/users/{person}/servers/{names[person]}") as reply:
                await reply.read()

        await asyncio.gather(*(start(p) for p in names))
        while time.perf_counter() - began < 600:
            now = await asyncio.to_thread(servers, f"{url}/hub/api", headers)
            ready = sum(1 for s in now.values() if s.get("ready"))
            if not any(s.get("pending") == "spawn" for s in now.values()):
                break  # every start has its outcome
            await asyncio.sleep(1)
    return time.perf_counter() - began, ready


def report(idle: Figures, loaded: Figures, people: int, starts: int) -> bool:
    print(f"{'endpoint':<14} {'idle p50/p95/p99 ms':>22} {'loaded p50/p95/p99 ms':>24} {'p95 x':>6} "
          f"{'requests':>8} {'errors':>6} {'5xx':>4}")
    met = True
    for name in ENDPOINTS:
        quiet, busy = idle.latencies_ms[name], loaded.latencies_ms[name]
        if not quiet or not busy:
            print(f"{name:<14} no answers (idle {len(quiet)}, loaded {len(busy)})")
            met = False
            continue
        ratio = percentile(busy, 0.95) / percentile(quiet, 0.95)
        met &= ratio <= GOAL_RATIO and not loaded.errors[name] and not loaded.server_errors[name]
        print(f"{name:<14} {'/'.join(f'{percentile(quiet, q):.0f}' for q in (0.5, 0.95, 0.99)):>22} "
              f"{'/'.join(f'{percentile(busy, q):.0f}' for q in (0.5, 0.95, 0.99)):>24} {ratio:>6.1f} "
              f"{len(busy):>8} {loaded.errors[name]:>6} {loaded.server_errors[name]:>4}")
    print(f"goal (p95 under load <= {GOAL_RATIO:g}x idle, zero errors, zero 5xx) with {people} people and "
          f"{starts} starts: {'met' if met else 'NOT met'}")
    return met


async def run(args: argparse.Namespace, hub, token: str, names: dict[str, str]) -> None:
    browsing = list(names)[args.starts:]
    starting = {p: names[p] for p in list(names)[:args.starts]}
    sessions: list[aiohttp.ClientSession] = []
    try:
        gate = asyncio.Semaphore(10)  # sign-ins ten at a time: signing in is not what is measured

        async def signed_in(person: str) -> aiohttp.ClientSession:
            async with gate:
                return await sign_in(hub.url, person, hub.password)

        began = time.perf_counter()
        sessions = await asyncio.gather(*(signed_in(p) for p in browsing))
        print(f"{len(sessions)} people signed in in {time.perf_counter() - began:.0f} s", flush=True)
        idle = Figures()
        for _ in range(args.idle_rounds):
            await one_round(hub.url, sessions[0], idle)
        loaded = Figures()
        began = time.perf_counter()
        starts = asyncio.create_task(start_workspaces(hub.url, token, starting))
        await browse(hub.url, sessions, args.pages, args.think, loaded, starts, random.Random(args.seed))
        browsed = time.perf_counter() - began
        seconds, ready = await starts
        asked = sum(loaded.asked.values())
        print(f"browsing: {asked} pages in {browsed:.0f} s ({asked / browsed:.1f} a second); "
              f"{ready}/{len(starting)} workspaces ready, the last outcome after {seconds:.0f} s", flush=True)
        report(idle, loaded, len(sessions), len(starting))
    finally:
        await asyncio.gather(*(s.close() for s in sessions))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=200, help="people browsing at once")
    parser.add_argument("--starts", type=int, default=20, help="workspaces starting meanwhile")
    parser.add_argument("--pages", type=int, default=200,
                        help="most pages per person under load; they stop once the starts are done")
    parser.add_argument("--think", type=float, default=5.0,
                        help="seconds a person reads a page, on average (from half to one and a half times it)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the reading times")
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql",
                        help="where the hub's state and the catalogue are: PostgreSQL as deployed, or the demo's SQLite")
    parser.add_argument("--idle-rounds", type=int, default=20, help="rounds of every endpoint with no load")
    args = parser.parse_args()
    if min(args.people, args.pages, args.idle_rounds) < 1 or args.starts < 0 or args.think <= 0:
        parser.error("--people, --pages and --idle-rounds must be at least 1, --starts at least 0, "
                     "--think more than 0")
    # a stop asked for (timeout, kill) still removes the benchmark's hub, containers and mounts
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    client = docker.from_env(timeout=300)
    print(f"{args.people} people, {args.starts} starts, {os.cpu_count()} cores, databases: {args.database}, "
          f"load average before {'/'.join(f'{x:.2f}' for x in os.getloadavg())}")
    databases = Databases() if args.database == "postgresql" else None
    try:
        settings = {"TRE_BENCH_KEEP_SERVICES": "1"}
        if databases:
            settings.update(TRE_DATABASE_URL=databases.url("tre"), TRE_HUB_DATABASE_URL=databases.url("hub"))
        hub, token = benchmark_hub(client, "project", settings)
        try:
            names = load_people(hub, args.people + args.starts)
            hub.start_process()
            asyncio.run(run(args, hub, token, names))
            starting = list(names)[:args.starts]
            stop_everyone(hub, token, starting, names)
        finally:
            hub.close()
    finally:
        if databases:
            databases.drop()
    print(f"load average after {'/'.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
