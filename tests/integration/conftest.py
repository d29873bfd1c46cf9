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
from contextlib import contextmanager
from pathlib import Path

import docker
import pytest
import requests

from spawner.storage import release_all

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
                 settings: dict[str, str] | None = None, scale: float = 0.2, prebuilt_extracts: bool = True) -> None:
        self.client = client
        self.config = config
        self.instance = f"test-{secrets.token_hex(3)}"
        self.home = Path(tempfile.mkdtemp(prefix=f"tre-{self.instance}-"))
        ports = {name: free_port() for name in ("public", "hub", "proxy_api", "catalogue", "egress", "package_index")}
        self.env = dict(os.environ)
        self.env.update(
            TRE_HOME=str(self.home), TRE_INSTANCE=self.instance, TRE_PUBLIC_PORT=str(ports["public"]),
            TRE_HUB_PORT=str(ports["hub"]), TRE_PROXY_API_PORT=str(ports["proxy_api"]), TRE_CATALOGUE_PORT=str(ports["catalogue"]),
            TRE_EGRESS_PORT=str(ports["egress"]),
            TRE_PACKAGE_INDEX_PORT=str(ports["package_index"]),
        )
        # quota filesystems are reserved on the disk as they are made (spawner/storage.py): test-sized
        self.env.update(TRE_PROJECT_QUOTA="512M", TRE_HOME_QUOTA="128M", TRE_STORAGE_RESERVE="2G")
        self.env.update(settings or {})
        self.url = f"http://127.0.0.1:{ports['public']}"
        self.process: subprocess.Popen | None = None
        self.tre("demo", "init", "--scale", str(scale))
        if prebuilt_extracts:
            # the projects' extracts, built as the hub's extraction service builds them once grants are
            # in force: a first start does not wait for them (test_workspace_extracts watches builds)
            self.tre("extracts", "build")
        # the image ./setup.sh built, registered in this catalogue without building it again (or the
        # one TRE_TEST_SINGLEUSER_IMAGE names: a branch's build under its own tag, so that tests of
        # other branches running on the same engine keep tre/singleuser:latest as they expect it)
        image = os.environ.get("TRE_TEST_SINGLEUSER_IMAGE")
        self.tre("images", "register", "singleuser", "--as", "admin", *(["--image", image] if image else []))
        self.tre("firewall", "install")
        self.password = self.tre("demo", "password").strip()

    def tre(self, *args: str) -> str:
        return subprocess.run([VENV_BIN / "tre", *args], env=self.env, check=True, cwd=REPO,
                              capture_output=True, text=True).stdout

    def start_process(self, timeout: float = 240) -> None:  # a loaded CI machine starts a hub slowly
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

    def _stop_proxy(self) -> None:
        """The proxy runs in a session of its own so that it outlives hub restarts; a hub that
        adopted it after a restart or a crash does not stop it. Stop it by the pid it recorded."""
        pid_file = self.home / "proxy.pid"
        try:
            pid = int(pid_file.read_text().strip())
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                if b"configurable-http-proxy" not in cmdline.read():
                    return  # the pid was reused by something else
            os.kill(pid, signal.SIGTERM)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            pass

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
        """Stop the hub, then remove what it made: containers and networks by label, rules, the
        proxy, files."""
        self.stop_process()
        self._stop_proxy()
        remove_labelled(self.client, self.instance)
        self.tre("firewall", "remove")
        release_all(self.home)  # the quota filesystems mounted below the workspaces
        shutil.rmtree(self.home, ignore_errors=True)

    def login(self, username: str, language: str = "en") -> requests.Session:
        """Sign in through the hub's login form, as a browser does from a link to the home page (the
        page of their role where people land otherwise is test_browser_hub's business)."""
        session = requests.Session()
        # The hub's pages are UTF-8 but say so only in a <meta> tag, as browsers expect.
        session.hooks["response"].append(lambda reply, *args, **kwargs: setattr(reply, "encoding", "utf-8"))
        session.headers["Accept-Language"] = {"fr": "fr-FR,fr;q=0.9", "en": "en-GB,en;q=0.9"}[language]
        session.get(f"{self.url}/hub/login").raise_for_status()
        reply = session.post(
            f"{self.url}/hub/login?next=%2Fhub%2Fhome",
            data={"username": username, "password": self.password, "_xsrf": hub_xsrf(session)},
        )
        reply.raise_for_status()
        assert reply.url.endswith("/hub/home"), f"login of {username} landed on {reply.url}"
        return session

    def start(self, session: requests.Session, user: str, project: str, timeout: float = 180) -> docker.models.containers.Container:
        """Press the project's start button, then open JupyterLab through the proxy as the browser
        does (the server's OAuth round trip with the hub included) until the page is there."""
        self.wait_while_stopping(session, user, project)
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
        """Press a project's start button, as a person would, once a stop under way (one the
        reconciler asked for, say) has ended."""
        self.wait_while_stopping(session, user, project, timeout)
        return session.get(f"{self.url}/hub/spawn/{user}/{project}")

    def wait_while_stopping(self, session: requests.Session, user: str, project: str, timeout: float = 60) -> None:
        """Wait until the hub has finished stopping the server, if it is stopping. Pressing start
        meanwhile shows the hub's "your server is stopping" page, whose progress page answers 404
        "no such server" once the stop ends (JupyterHub forgets a stopped named server then)."""
        headers = {"X-XSRFToken": hub_xsrf(session), "Referer": f"{self.url}/hub/home"}

        def stopping() -> bool:
            servers = session.get(f"{self.url}/hub/api/users/{user}", headers=headers).json().get("servers", {})
            return servers.get(project, {}).get("pending") == "stop"

        wait_for(lambda: not stopping(), timeout, f"the hub to finish stopping {user}/{project}")

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


@contextmanager
def running_hub(client: docker.DockerClient, **kwargs) -> Iterator[Hub]:
    """A started hub of its own (its settings, its catalogue), removed with all it made on leaving."""
    hub = Hub(client, **kwargs)
    try:
        hub.start_process()
        yield hub
    finally:
        hub.close()


def catalogue(hub: Hub):
    """A session on the hub's own catalogue database."""
    from tre_core.db import session_scope
    from tre_core.settings import TRESettings

    return session_scope(TRESettings(home=hub.home).catalogue_url)


@pytest.fixture(scope="session")
def hub(docker_client) -> Iterator[Hub]:
    hub = Hub(docker_client)
    try:
        hub.start_process()
        yield hub
    finally:
        hub.close()


# --- a real browser: Debian's Chromium driven by Playwright -----------------------------------------

# Headless Chromium as root on a machine whose only network is loopback: without the sandbox (root),
# and without the background connections (updates, sync, QUIC probes) that the closed network refuses.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
BROWSER_LOCALES = ("en-GB", "fr-FR")


def chromium_path() -> Path:
    """Debian's chromium, or the one TRE_CHROMIUM names; Playwright never downloads its own here."""
    return Path(os.environ.get("TRE_CHROMIUM", "/usr/bin/chromium"))


class Chromium:
    """One headless Chromium for the whole run, with a fresh empty profile, reached by Playwright
    over its DevTools port on loopback.

    Why not Playwright's own ``launch()`` in a session fixture: the sync API keeps its asyncio loop
    marked as running in the test thread for as long as Playwright is open, so every later test that
    calls ``asyncio.run`` (the unit tests run after these) would fail. So the browser process lives
    for the session, and each test holds a Playwright connection only while it runs."""

    def __init__(self, path: Path) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="tre-chromium-"))
        self.process = subprocess.Popen(
            [str(path), *CHROMIUM_ARGS, f"--user-data-dir={self.profile}", "--remote-debugging-address=127.0.0.1",
             "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        port_file = self.profile / "DevToolsActivePort"  # Chromium writes its chosen port there
        wait_for(lambda: port_file.exists() and port_file.read_text().strip() or self.process.poll() is not None,
                 60, f"Chromium ({path}) to open its DevTools port")
        assert self.process.poll() is None, f"Chromium ({path}) exited with status {self.process.returncode}"
        self.endpoint = f"http://127.0.0.1:{port_file.read_text().split()[0]}"

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="session")
def browser() -> Iterator[Chromium]:
    """One Chromium for the whole run, closed at the end. No browser is a failure, never a skip:
    ./setup.sh test installs it."""
    path = chromium_path()
    if not os.access(path, os.X_OK):
        pytest.fail(f"No Chromium at {path}: install Debian's package (`apt-get install chromium`, which "
                    "`./setup.sh test` does), or set TRE_CHROMIUM to the browser's path.", pytrace=False)
    chromium = Chromium(path)
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture
def playwright_browser(browser: Chromium):
    """This test's Playwright connection to the run's Chromium (closed with the test, which closes
    every context it opened)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        connected = playwright.chromium.connect_over_cdp(browser.endpoint)
        try:
            yield connected
        finally:
            connected.close()


def browser_context(connected, locale: str = "en-GB"):
    """A fresh browser profile (no cookies) whose language is ``locale``: Chromium then sends it
    as Accept-Language, which the hub, the catalogue pages and the workspace follow."""
    assert locale in BROWSER_LOCALES, f"the TRE speaks {BROWSER_LOCALES}, not {locale}"
    return connected.new_context(locale=locale, viewport={"width": 1280, "height": 900})


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures know in teardown whether it failed."""
    report = yield
    setattr(item, f"tre_report_{report.when}", report)
    return report


@pytest.fixture
def open_page(playwright_browser, request, tmp_path):
    """``open_page(locale)``: a page in a new context of that language. A failed test leaves a
    screenshot of each of its pages in its pytest tmp folder (the path is printed)."""
    contexts = []

    def open_(locale: str = "en-GB"):
        context = browser_context(playwright_browser, locale)
        contexts.append(context)
        return context.new_page()

    yield open_
    report = getattr(request.node, "tre_report_call", None)
    for number, context in enumerate(contexts):
        if report is not None and report.failed:
            for index, page in enumerate(context.pages):
                shot = tmp_path / f"failure-{number}-{index}.png"
                try:
                    page.screenshot(path=str(shot), full_page=True)
                    print(f"screenshot of {page.url}: {shot}")
                except Exception as error:  # a crashed page must not hide the test's own failure
                    print(f"no screenshot of {page.url}: {error}")
        context.close()
