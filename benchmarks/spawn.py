"""Spawn latency: median of N starts of a project server, from the REST call to ready, for
ProjectSpawner (catalogue, plan, hardening, firewall) and for a plain DockerSpawner with the same
image and the same kind of internal network, and no policy.

    .venv/bin/python benchmarks/spawn.py [--rounds 10]

Starts alternate between the two hubs, so that both meet the same machine. Prints both medians
and their ratio (targets: at most 1.15 for the first plan, 1.2 hardened).
Each hub runs on free loopback ports with its own state folder; everything it creates is removed
by label afterwards.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import time
from pathlib import Path

import docker
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from spawner.docker_adapter import ensure_network  # noqa: E402
from spawner.plan import project_network  # noqa: E402
from tests.integration.conftest import Hub  # noqa: E402

USER, PROJECT = "alice", "cardio-risk"


def wait(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(what)


def benchmark_hub(client: docker.DockerClient, kind: str, settings: dict[str, str] | None = None) -> tuple[Hub, str]:
    token = secrets.token_hex(32)
    hub = Hub(client, config=REPO / "benchmarks" / "hub_config.py", scale=0.05,
              settings={"TRE_BENCH_TOKEN": token, "TRE_BENCH_SPAWNER": kind, **(settings or {})})
    if kind == "plain":
        network = project_network(hub.instance, PROJECT)
        gateway = ensure_network(client.api, network)
        hub.env.update(TRE_BENCH_IMAGE=hub.env.get("TRE_SINGLEUSER_IMAGE", "tre/singleuser:latest"),
                       TRE_BENCH_NETWORK=network.name,
                       TRE_BENCH_HUB_CONNECT_URL=f"http://{gateway}:{hub.env['TRE_HUB_PORT']}")
    return hub, token


def start_once(hub: Hub, token: str) -> float:
    api, headers = f"{hub.url}/hub/api", {"Authorization": f"token {token}"}

    def server() -> dict:
        return requests.get(f"{api}/users/{USER}", headers=headers).json()["servers"].get(PROJECT, {})

    started = time.perf_counter()
    reply = requests.post(f"{api}/users/{USER}/servers/{PROJECT}", headers=headers)
    assert reply.status_code in (201, 202), reply.text
    wait(lambda: server().get("ready"), 180, "server ready")
    duration = time.perf_counter() - started
    requests.delete(f"{api}/users/{USER}/servers/{PROJECT}", headers=headers)
    wait(lambda: not server(), 120, "server stopped", interval=0.2)
    return duration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    client = docker.from_env()
    hubs = {kind: benchmark_hub(client, kind) for kind in ("plain", "project")}
    results: dict[str, list[float]] = {"plain": [], "project": []}
    try:
        for hub, token in hubs.values():
            hub.start_process()
            requests.post(f"{hub.url}/hub/api/users/{USER}", headers={"Authorization": f"token {token}"})
        # interleaved, so that both spawners meet the same machine (the other jobs, the page cache)
        for _ in range(args.rounds):
            for kind, (hub, token) in hubs.items():
                results[kind].append(start_once(hub, token))
    finally:
        for hub, _ in hubs.values():
            hub.close()
    print(f"{'spawner':<28}{'median s':>10}{'min s':>8}{'max s':>8}")
    for label, kind in (("plain DockerSpawner", "plain"), ("ProjectSpawner (TRE)", "project")):
        values = results[kind]
        print(f"{label:<28}{statistics.median(values):>10.2f}{min(values):>8.2f}{max(values):>8.2f}")
    ratio = statistics.median(results["project"]) / statistics.median(results["plain"])
    print(f"ratio ProjectSpawner / DockerSpawner: {ratio:.2f} (targets <= 1.15 first plan, <= 1.2 hardened), "
          f"{args.rounds} starts each")


if __name__ == "__main__":
    main()
