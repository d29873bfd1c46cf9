"""How long a sign-in through an OpenID provider takes, against the demo's local login.

    .venv/bin/python benchmarks/oidc_login.py [--rounds 20]

Two hubs on loopback, the same catalogue: one with the demo login, one signing people in through
the test's OpenID provider (tests/oidc_provider/provider.mjs). Each round is a fresh client doing
the whole sign-in as a browser does (no JavaScript needed): demo: the login form; OpenID: the hub's
redirect, the provider's login page, the password, the code's return, the hub's token and userinfo
requests, the catalogue check and audit row, until the home page. Figures are medians.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

import docker
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.integration.conftest import Hub, free_port  # noqa: E402
from tests.integration.test_oidc_login import PASSWORDS, OpenIDProvider  # noqa: E402


def oidc_sign_in(hub: Hub, username: str) -> None:
    session = requests.Session()
    page = session.get(f"{hub.url}/hub/oauth_login")  # → the provider's login page
    action = re.search(r'action="(/interaction/[\w-]+/login)"', page.text)
    assert action, page.text[:500]
    origin = re.match(r"https?://[^/]+", page.url).group(0)
    home = session.post(origin + action.group(1), data={"login": username, "password": PASSWORDS[username]})
    assert home.url.endswith("/hub/home"), home.url


def median_seconds(rounds: int, sign_in) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        sign_in()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    client = docker.from_env(timeout=300)
    demo = Hub(client, scale=0.05)
    port = free_port()
    oidc = Hub(client, scale=0.05, settings={"TRE_OIDC_ISSUER": f"http://127.0.0.1:{port}",
                                             "TRE_OIDC_CLIENT_ID": "tre-hub", "TRE_OIDC_CLIENT_SECRET": "bench"})
    oidc.env["TRE_OIDC_CALLBACK_URL"] = f"{oidc.url}/hub/oauth_callback"
    provider = None
    try:
        provider = OpenIDProvider(port, oidc.url, "bench")
        demo.start_process()
        oidc.start_process()
        demo.login("alice"), oidc_sign_in(oidc, "alice")  # first sign-ins create the hub users
        demo_s = median_seconds(args.rounds, lambda: demo.login("alice"))
        oidc_s = median_seconds(args.rounds, lambda: oidc_sign_in(oidc, "alice"))
    finally:
        for hub in (demo, oidc):
            hub.close()
        if provider:
            provider.close()
    print(f"median sign-in, {args.rounds} rounds: OpenID provider {oidc_s * 1000:.0f} ms "
          f"against demo login {demo_s * 1000:.0f} ms, ratio {oidc_s / demo_s:.2f}")


if __name__ == "__main__":
    main()
