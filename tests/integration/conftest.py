"""One real hub for the whole integration run: the Docker engine, the singleuser image built by
``./setup.sh test``, configurable-http-proxy and JupyterHub with ProjectSpawner, on free loopback
ports, with its own state folder and instance name. Everything it creates in Docker carries the
label ``tre.instance=<that name>`` and is removed by that label at the end."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def hub_xsrf(session: requests.Session) -> str:
    """The hub's XSRF token (each single-user server sets its own cookie of that name too)."""
    return session.cookies.get("_xsrf", path="/hub/")


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout} s: {what}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    client = docker.from_env(timeout=120)
    client.ping()  # no engine is a failure, never a skip: ./setup.sh test starts one
    return client


class Hub:
    """A real hub with its own state folder, instance name, loopback ports and firewall rules,
    which the tests drive as people do (login form, start buttons) and can restart."""

    def __init__(self, client: docker.DockerClient, *, config: Path = REPO / "jupyterhub_config.py",
                 settings: dict[str, str] | None = None, scale: float = 0.2) -> None:
        self.client = client
        self.config = config
        self.instance = f"test-{secrets.token_hex(3)}"
        self.home = Path(tempfile.mkdtemp(prefix=f"tre-{self.instance}-"))
        ports = {name: free_port() for name in ("public", "hub", "proxy_api", "catalogue", "egress")}
        self.env = dict(os.environ)
        self.env.update(
            TRE_HOME=str(self.home), TRE_INSTANCE=self.instance, TRE_PUBLIC_PORT=str(ports["public"]),
            TRE_HUB_PORT=str(ports["hub"]), TRE_PROXY_API_PORT=str(ports["proxy_api"]), TRE_CATALOGUE_PORT=str(ports["catalogue"]),
            TRE_EGRESS_PORT=str(ports["egress"]),
            **(settings or {}),
        )
        self.url = f"http://127.0.0.1:{ports['public']}"
        self.process: subprocess.Popen | None = None
        self.tre("demo", "init", "--scale", str(scale))
        self.tre("firewall", "install")
        self.password = self.tre("demo", "password").strip()

    def tre(self, *args: str) -> str:
        return subprocess.run([VENV_BIN / "tre", *args], env=self.env, check=True, cwd=REPO,
                              capture_output=True, text=True).stdout

    def start_process(self, timeout: float = 60) -> None:
        with (self.home / "hub.log").open("a") as log:
            # its own process group: the proxy and the hub's services go with it, even on a crash
            self.process = subprocess.Popen([VENV_BIN / "jupyterhub", "-f", self.config], env=self.env,
                                            cwd=self.home, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(f"{self.url}/hub/health", timeout=2).ok:
                    return
            except requests.ConnectionError:
                pass
            assert self.process.poll() is None, f"the hub exited:\n{self.log_tail()}"
            assert time.monotonic() < deadline, f"the hub did not answer in {timeout} s:\n{self.log_tail()}"
            time.sleep(0.3)

    def stop_process(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._kill_group()

    def crash(self) -> None:
        """What a machine or unit failure does: the hub and everything it started die at once."""
        self._kill_group()
        self.process.wait()

    def _kill_group(self) -> None:
        if self.process:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        """Stop the hub, then remove what it made: containers and networks by label, rules, files."""
        self.stop_process()
        remove_labelled(self.client, self.instance)
        self.tre("firewall", "remove")
        shutil.rmtree(self.home, ignore_errors=True)

    def login(self, username: str, language: str = "en") -> requests.Session:
        """Sign in through the hub's login form, as a browser does."""
        session = requests.Session()
        # The hub's pages are UTF-8 but say so only in a <meta> tag, as browsers expect.
        session.hooks["response"].append(lambda reply, *args, **kwargs: setattr(reply, "encoding", "utf-8"))
        session.headers["Accept-Language"] = {"fr": "fr-FR,fr;q=0.9", "en": "en-GB,en;q=0.9"}[language]
        session.get(f"{self.url}/hub/login").raise_for_status()
        reply = session.post(
            f"{self.url}/hub/login",
            data={"username": username, "password": self.password, "_xsrf": hub_xsrf(session)},
        )
        reply.raise_for_status()
        assert reply.url.endswith("/hub/home"), f"login of {username} landed on {reply.url}"
        return session

    def start(self, session: requests.Session, user: str, project: str, timeout: float = 180) -> docker.models.containers.Container:
        """Press the project's start button, then open JupyterLab through the proxy as the browser
        does (the server's OAuth round trip with the hub included) until the page is there."""
        reply = session.get(f"{self.url}/hub/spawn/{user}/{project}")
        reply.raise_for_status()
        lab = f"{self.url}/user/{user}/{project}/lab"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            page = session.get(lab)
            if page.status_code == 200 and page.url.startswith(lab) and "jupyter-config-data" in page.text:
                return self.container(user, project)
            time.sleep(1)
        raise AssertionError(f"{user}/{project} not ready after {timeout}s; hub log:\n{self.log_tail()}")

    def press_start(self, session: requests.Session, user: str, project: str, timeout: float = 60) -> requests.Response:
        """Press a project's start button as a person would after a stop the reconciler asked for:
        once the hub's record of the server is gone (until then its pages say "your server is
        stopping", or, while the record is being removed, that there is no such server), and again
        while the hub still shows its stopping page."""
        deadline = time.monotonic() + timeout
        headers = {"X-XSRFToken": hub_xsrf(session), "Referer": f"{self.url}/hub/home"}
        wait_for(lambda: project not in session.get(f"{self.url}/hub/api/users/{user}", headers=headers)
                 .json().get("servers", {}), timeout, f"the hub to forget {user}/{project}")
        while True:
            reply = session.get(f"{self.url}/hub/spawn/{user}/{project}")
            if "Your server is stopping" not in reply.text or time.monotonic() > deadline:
                return reply
            time.sleep(0.5)

    def stop(self, session: requests.Session, user: str, project: str) -> None:
        reply = session.delete(
            f"{self.url}/hub/api/users/{user}/servers/{project}",
            headers={"X-XSRFToken": hub_xsrf(session), "Referer": f"{self.url}/hub/home"},
        )
        assert reply.status_code in (202, 204), reply.text

    def container(self, user: str, project: str):
        found = self.client.containers.list(filters={"label": [
            f"tre.instance={self.instance}", f"tre.project={project}", f"tre.user={user}"]})
        assert len(found) == 1, f"expected one container of {user}/{project}, found {found}"
        return found[0]

    def log_tail(self, lines: int = 60) -> str:
        log = self.home / "hub.log"
        return "\n".join(log.read_text().splitlines()[-lines:]) if log.exists() else "(no log)"


def remove_labelled(client: docker.DockerClient, instance: str) -> None:
    for container in client.containers.list(all=True, filters={"label": f"tre.instance={instance}"}):
        container.remove(force=True)
    for network in client.networks.list(filters={"label": f"tre.instance={instance}"}):
        network.remove()


@pytest.fixture(scope="session")
def hub(docker_client) -> Iterator[Hub]:
    hub = Hub(docker_client)
    try:
        hub.start_process()
        yield hub
    finally:
        hub.close()
