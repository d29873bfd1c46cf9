"""One real hub for the whole integration run: the Docker engine, the singleuser image built by
``./setup.sh test``, configurable-http-proxy and JupyterHub with ProjectSpawner, on free loopback
ports, with its own state folder and instance name. Everything it creates in Docker carries the
label ``tre.instance=<that name>`` and is removed by that label at the end."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def hub_xsrf(session: requests.Session) -> str:
    """The hub's XSRF token (each single-user server sets its own cookie of that name too)."""
    return session.cookies.get("_xsrf", path="/hub/")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    client = docker.from_env(timeout=120)
    client.ping()  # no engine is a failure, never a skip: ./setup.sh test starts one
    return client


@dataclass
class Hub:
    url: str
    env: dict[str, str]
    instance: str
    home: Path
    client: docker.DockerClient
    password: str
    sessions: dict[str, requests.Session] = field(default_factory=dict)

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
    instance = f"test-{secrets.token_hex(3)}"
    home = Path(tempfile.mkdtemp(prefix=f"tre-{instance}-"))
    ports = {name: free_port() for name in ("public", "hub", "proxy_api")}
    env = dict(os.environ)
    env.update(
        TRE_HOME=str(home), TRE_INSTANCE=instance, TRE_PUBLIC_PORT=str(ports["public"]),
        TRE_HUB_PORT=str(ports["hub"]), TRE_PROXY_API_PORT=str(ports["proxy_api"]),
    )
    subprocess.run([VENV_BIN / "tre", "demo", "init", "--scale", "0.2"], env=env, check=True, cwd=REPO)
    subprocess.run([VENV_BIN / "tre", "firewall", "install"], env=env, check=True, cwd=REPO)
    password = subprocess.run([VENV_BIN / "tre", "demo", "password"], env=env, check=True, cwd=REPO,
                              capture_output=True, text=True).stdout.strip()
    log = (home / "hub.log").open("w")
    process = subprocess.Popen([VENV_BIN / "jupyterhub", "-f", REPO / "jupyterhub_config.py"],
                               env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{ports['public']}"
    hub = Hub(url=url, env=env, instance=instance, home=home, client=docker_client, password=password)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{url}/hub/health", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert process.poll() is None, f"the hub exited:\n{hub.log_tail()}"
            assert time.monotonic() < deadline, f"the hub did not answer in 60 s:\n{hub.log_tail()}"
            time.sleep(0.5)
        yield hub
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        remove_labelled(docker_client, instance)
        subprocess.run([VENV_BIN / "tre", "firewall", "remove"], env=env, check=True, cwd=REPO)
        shutil.rmtree(home, ignore_errors=True)
