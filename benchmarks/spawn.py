"""Spawn latency: median of N starts of a project server, from the REST call to ready, for
ProjectSpawner and for a plain DockerSpawner with the same image and network and no policy.

    .venv/bin/python benchmarks/spawn.py [--rounds 10]

Prints both medians and their ratio (the target is a ratio of at most 1.15). Each hub runs on free
loopback ports with its own state folder; everything it creates is removed by label afterwards.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from datasets.settings import TRESettings  # noqa: E402
from spawner.docker_adapter import ensure_network  # noqa: E402
from spawner.plan import project_network  # noqa: E402
from tests.integration.conftest import free_port, remove_labelled  # noqa: E402

BIN = Path(sys.executable).parent
USER, PROJECT = "alice", "cardio-risk"


def wait(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(what)


def measure(kind: str, rounds: int, client: docker.DockerClient) -> list[float]:
    instance = f"bench-{secrets.token_hex(3)}"
    home = Path(tempfile.mkdtemp(prefix=f"tre-{instance}-"))
    token = secrets.token_hex(32)
    ports = {k: free_port() for k in ("public", "hub", "proxy")}
    env = dict(os.environ, TRE_HOME=str(home), TRE_INSTANCE=instance, TRE_BENCH_TOKEN=token,
               TRE_PUBLIC_PORT=str(ports["public"]), TRE_HUB_PORT=str(ports["hub"]),
               TRE_PROXY_API_PORT=str(ports["proxy"]), TRE_BENCH_SPAWNER=kind)
    settings = TRESettings(_env_file=None, home=home, instance=instance)
    if kind == "plain":
        network = project_network(instance, PROJECT)
        gateway = ensure_network(client.api, network)
        env.update(TRE_BENCH_IMAGE=settings.singleuser_image, TRE_BENCH_NETWORK=network.name,
                   TRE_BENCH_HUB_CONNECT_URL=f"http://{gateway}:{ports['hub']}")
    subprocess.run([BIN / "tre", "demo", "init", "--scale", "0.2"], env=env, check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL)
    log = (home / "hub.log").open("w")
    hub = subprocess.Popen([BIN / "jupyterhub", "-f", REPO / "benchmarks" / "hub_config.py"], env=env,
                           cwd=home, stdout=log, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{ports['public']}/hub/api"
    headers = {"Authorization": f"token {token}"}
    durations = []
    try:
        wait(lambda: _ok(f"{api}/"), 60, "hub start")
        requests.post(f"{api}/users/{USER}", headers=headers)  # the user exists before the first start
        for _ in range(rounds):
            started = time.perf_counter()
            reply = requests.post(f"{api}/users/{USER}/servers/{PROJECT}", headers=headers)
            assert reply.status_code in (201, 202), reply.text
            wait(lambda: _server(api, headers).get("ready"), 180, "server ready")
            durations.append(time.perf_counter() - started)
            requests.delete(f"{api}/users/{USER}/servers/{PROJECT}", headers=headers)
            wait(lambda: not _server(api, headers), 120, "server stopped", interval=0.2)
    finally:
        hub.terminate()
        hub.wait(timeout=60)
        log.close()
        remove_labelled(client, instance)
        shutil.rmtree(home, ignore_errors=True)
    return durations


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.ConnectionError:
        return False


def _server(api: str, headers: dict) -> dict:
    return requests.get(f"{api}/users/{USER}", headers=headers).json()["servers"].get(PROJECT, {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    client = docker.from_env()
    results = {kind: measure(kind, args.rounds, client) for kind in ("plain", "project")}
    plain, project = (statistics.median(results[k]) for k in ("plain", "project"))
    print(f"{'spawner':<28}{'median s':>10}{'min s':>8}{'max s':>8}")
    for label, kind in (("plain DockerSpawner", "plain"), ("ProjectSpawner (TRE)", "project")):
        values = results[kind]
        print(f"{label:<28}{statistics.median(values):>10.2f}{min(values):>8.2f}{max(values):>8.2f}")
    print(f"ratio ProjectSpawner / DockerSpawner: {project / plain:.2f} (target <= 1.15), {args.rounds} starts each")


if __name__ == "__main__":
    main()
