"""From a data steward's approval to a researcher's ready workspace, and how fast a revoked
project is refused.

    .venv/bin/python benchmarks/approval_to_workspace.py [--rounds 5]

For each round a new application is recorded, then timed: the `tre projects approve` command
(a process of its own, as a steward runs it), the start request and the wait until the server is
ready. Then the grant is revoked and start requests are timed until their 403.
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

from datasets import workflow  # noqa: E402
from tre_core.db import session_scope  # noqa: E402
from tre_core.settings import TRESettings  # noqa: E402
from tests.integration.conftest import Hub  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    token = secrets.token_hex(32)
    hub = Hub(docker.from_env(timeout=300), config=REPO / "benchmarks" / "hub_config.py", scale=0.05,
              settings={"TRE_BENCH_TOKEN": token, "TRE_BENCH_SPAWNER": "project"})
    api, headers = f"{hub.url}/hub/api", {"Authorization": f"token {token}"}
    url = TRESettings(home=hub.home).catalogue_url
    to_ready, approve_only, refusals = [], [], []
    try:
        hub.start_process()
        requests.post(f"{api}/users/alice", headers=headers)
        for n in range(args.rounds):
            slug = f"bench-{n}"
            with session_scope(url) as session:
                workflow.apply_for_project(session, "alice", workflow.ApplicationForm(
                    slug=slug, title=f"Benchmark {n}", lay_summary="x", purpose="x", public_interest="x",
                    datasets=["claims"]))
            started = time.perf_counter()
            hub.tre("projects", "approve", slug, "--as", "steward", "--reference", f"BENCH-{n}",
                    "--from", "2026-01-01", "--until", "2030-12-31")
            approve_only.append(time.perf_counter() - started)
            reply = requests.post(f"{api}/users/alice/servers/{slug}", headers=headers)
            assert reply.status_code in (201, 202), reply.text
            while not requests.get(f"{api}/users/alice", headers=headers).json()["servers"].get(slug, {}).get("ready"):
                time.sleep(0.05)
            to_ready.append(time.perf_counter() - started)
            requests.delete(f"{api}/users/alice/servers/{slug}", headers=headers)
            while slug in requests.get(f"{api}/users/alice", headers=headers).json()["servers"]:
                time.sleep(0.2)
            hub.tre("projects", "revoke", slug, "claims", "--as", "steward")
            started = time.perf_counter()
            reply = requests.post(f"{api}/users/alice/servers/{slug}", headers=headers)
            refusals.append(time.perf_counter() - started)
            assert reply.status_code == 403, reply.text
    finally:
        hub.close()
    print(f"{'step':<40}{'median s':>10}{'min s':>8}{'max s':>8}")
    for label, values in (("approval command alone", approve_only), ("approval command to ready workspace", to_ready),
                          ("refusal of a revoked project (REST)", refusals)):
        print(f"{label:<40}{statistics.median(values):>10.3f}{min(values):>8.3f}{max(values):>8.3f}")
    print(f"{args.rounds} rounds; the issue asks for an approval to become a workspace within a minute")


if __name__ == "__main__":
    main()
