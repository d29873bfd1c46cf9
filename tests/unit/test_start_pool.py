"""Starts do not queue behind each other's catalogue reads, checks and Docker calls: two starts'
blocking work runs at once in the spawners' shared pool (DockerSpawner's own has one thread).
Proved with events, not timings: each start's check waits until the other's has begun."""

from __future__ import annotations

import asyncio
import threading

from traitlets.config import Config

from spawner.catalogue_workspace import CatalogueWorkspace
from spawner.project_spawner import ProjectSpawner


def rendezvous(mine: threading.Event, theirs: threading.Event) -> bool:
    mine.set()
    return theirs.wait(timeout=20)  # False if the other never began: the two were serialised


def test_two_starts_catalogue_checks_and_docker_calls_overlap(monkeypatch):
    monkeypatch.setattr(CatalogueWorkspace, "_start_pool", None)
    config = Config()
    config.ProjectSpawner.start_threads = 4
    first, second = ProjectSpawner(config=config), ProjectSpawner(config=config)
    assert first.executor is second.executor and first.executor._max_workers == 4
    a, b = threading.Event(), threading.Event()
    first._workspace_access = lambda: rendezvous(a, b)
    second._workspace_access = lambda: rendezvous(b, a)

    async def both_checks():
        return await asyncio.gather(first._in_pool(first._workspace_access),
                                    second._in_pool(second._workspace_access))

    assert asyncio.run(both_checks()) == [True, True]

    # DockerSpawner's docker() goes through the same pool
    c, d = threading.Event(), threading.Event()
    monkeypatch.setattr(ProjectSpawner, "_docker", lambda self, method: rendezvous(*{"x": (c, d), "y": (d, c)}[method]))

    async def both_docker_calls():
        return await asyncio.gather(first.docker("x"), second.docker("y"))

    assert asyncio.run(both_docker_calls()) == [True, True]


def test_with_one_thread_the_same_checks_would_wait_for_each_other(monkeypatch):
    """The control: the rendezvous above fails when the pool has one thread."""
    monkeypatch.setattr(CatalogueWorkspace, "_start_pool", None)
    config = Config()
    config.ProjectSpawner.start_threads = 1
    first, second = ProjectSpawner(config=config), ProjectSpawner(config=config)
    a, b = threading.Event(), threading.Event()

    def wait_briefly(mine, theirs):
        mine.set()
        return theirs.wait(timeout=0.5)

    async def both_checks():
        return await asyncio.gather(first._in_pool(wait_briefly, a, b), second._in_pool(wait_briefly, b, a))

    assert asyncio.run(both_checks()) == [False, True]


def test_the_engine_client_has_a_connection_per_thread():
    config = Config()
    config.ProjectSpawner.start_threads = 12
    assert ProjectSpawner(config=config).client_kwargs == {"max_pool_size": 12}


def test_one_projects_parallel_starts_create_its_network_once():
    """With starts in parallel threads, two members of one project used to both find no network
    and both create it; Docker refused the second (403, same bridge name). Each create here waits
    until another start has looked for the network, or 2 s: without the lock that is a race."""
    from docker.errors import APIError, NotFound

    from spawner import docker_adapter
    from spawner.plan import project_network

    network = project_network("demo", "cardio-risk")
    looked = threading.Event()
    created: list[str] = []
    info = {"Labels": network.labels, "Internal": True, "Options": {"com.docker.network.bridge.name": network.bridge},
            "IPAM": {"Config": [{"Gateway": "10.0.0.1"}]}}

    class Engine:
        def inspect_network(self, name):
            if not created:
                if threading.current_thread().name.endswith("_1"):
                    looked.set()
                raise NotFound("no such network")
            return info

        def create_network(self, name, **options):
            looked.wait(timeout=2)
            if created:
                raise APIError("networks have same bridge name", explanation="403")
            created.append(name)

    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(2) as pool:
        gateways = list(pool.map(lambda _: docker_adapter.ensure_network(Engine(), network), range(2)))
    assert gateways == ["10.0.0.1", "10.0.0.1"] and created == [network.name]
