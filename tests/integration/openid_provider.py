"""The test OpenID provider (tests/oidc_provider/provider.mjs, npm oidc-provider) run for a test:
on loopback for the sign-on tests, on a test network's gateway for the deployment test."""

from __future__ import annotations

import subprocess
import time

import requests

from tests.integration.conftest import REPO


class OpenIDProvider:
    """tests/oidc_provider/provider.mjs on ``address``:``port`` (loopback by default), for one hub."""

    def __init__(self, port: int, hub_url: str, client_secret: str, address: str = "127.0.0.1") -> None:
        self.issuer = f"http://{address}:{port}"
        self.command = ["node", str(REPO / "tests" / "oidc_provider" / "provider.mjs"), str(port),
                        f"{hub_url}/hub/oauth_callback", f"{hub_url}/hub/login", client_secret, address]
        self.start()

    def start(self) -> None:
        self.log = []
        self.process = subprocess.Popen(self.command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, start_new_session=True)
        deadline = time.monotonic() + 30
        for line in self.process.stdout:  # its startup warnings, then "ready <issuer>"
            self.log.append(line)
            if line.startswith("ready "):
                return
            assert time.monotonic() < deadline, "the OpenID provider did not start:\n" + "".join(self.log)
        raise AssertionError("the OpenID provider exited:\n" + "".join(self.log))

    def crash_after_next_code(self) -> None:
        """Make the provider vanish right after it sends the next browser back with a code."""
        requests.post(f"{self.issuer}/test/crash-after-next-code", timeout=10).raise_for_status()

    def report_acr(self, value: str) -> None:
        """The acr (and its amr) the next sign-ins come back with: urn:tre:mfa or urn:tre:pwd."""
        requests.post(f"{self.issuer}/test/acr", params={"value": value}, timeout=10).raise_for_status()

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
