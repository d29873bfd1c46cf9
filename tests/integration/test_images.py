"""Admins manage the analysis images, with the real engine, builder, hub and proxy: a project image
is built (for real) and registered, pinned to a project, and its workspace runs exactly that digest
with its extra package; a start asking for another image is refused; retirement blocks new starts
and `tre images show` names the servers still on it; failing builds name their step and register
nothing; the R image's kernel runs a cell through the Jupyter kernel protocol."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from tests.integration.conftest import REPO, VENV_BIN, Hub, hub_xsrf

pytestmark = pytest.mark.integration

EXAMPLE = "projects/example"


@pytest.fixture(scope="module")
def hub(docker_client) -> Iterator[Hub]:
    """A hub of its own: these tests pin and retire images in its catalogue, which the shared
    hub's tests must not see."""
    own = Hub(docker_client)
    try:
        own.start_process()
        yield own
    finally:
        own.close()


def tre(hub: Hub, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The tre command as an admin runs it on the host; refusals are results, not exceptions."""
    return subprocess.run([VENV_BIN / "tre", *args], env={**hub.env, **(env or {})}, cwd=REPO,
                          capture_output=True, text=True, timeout=900)


def registry_rows(hub: Hub) -> list[tuple[str, int, str, str]]:
    from sqlalchemy import select

    from tre_core.db import session_scope
    from datasets.models import AnalysisImage
    from tre_core.settings import TRESettings

    with session_scope(TRESettings(home=hub.home).catalogue_url) as session:
        return [(i.name, i.version, i.digest, i.status.value)
                for i in session.scalars(select(AnalysisImage).order_by(AnalysisImage.id))]


def audit_actions(hub: Hub) -> list[str]:
    from sqlalchemy import select

    from tre_core.db import session_scope
    from datasets.models import AuditEvent
    from tre_core.settings import TRESettings

    with session_scope(TRESettings(home=hub.home).catalogue_url) as session:
        return [e.action for e in session.scalars(select(AuditEvent).order_by(AuditEvent.seq))]


def api_headers(hub: Hub, session: requests.Session, user: str) -> dict[str, str]:
    token = session.post(
        f"{hub.url}/hub/api/users/{user}/tokens",
        headers={"X-XSRFToken": hub_xsrf(session), "Referer": f"{hub.url}/hub/token"},
        json={"note": "images test", "expires_in": 600},
    ).json()["token"]
    return {"Authorization": f"token {token}"}


@pytest.fixture(scope="module")
def example(hub) -> Iterator[str]:
    """The example project image, built by the real builder and registered; its digest. Removed
    afterwards when this run made it (an earlier one's stays, for the build cache)."""
    from docker.errors import APIError, ImageNotFound

    try:
        existed = hub.client.images.get(f"tre/{EXAMPLE}:latest").id
    except ImageNotFound:
        existed = None
    result = tre(hub, "images", "build", EXAMPLE, "--as", "admin")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"registered {EXAMPLE}:1" in result.stdout, result.stdout
    digest = next(d for n, _, d, _ in registry_rows(hub) if n == EXAMPLE)
    yield digest
    if existed != digest:
        for container in hub.client.containers.list(all=True, filters={"label": f"tre.instance={hub.instance}"}):
            container.remove(force=True)
        try:
            hub.client.images.remove(digest)
        except APIError:  # still used by a container that is not ours: leave it
            pass


def test_the_example_image_is_registered_with_its_sbom(hub, example):
    assert example.startswith("sha256:") and hub.client.images.get(example).id == example
    rows = {(n, v): (d, s) for n, v, d, s in registry_rows(hub)}
    assert rows[(EXAMPLE, 1)] == (example, "active")
    assert rows[("singleuser", 1)][1] == "active"  # registered by the Hub's set-up, not rebuilt
    shown = tre(hub, "images", "show", EXAMPLE)
    assert shown.returncode == 0, shown.stderr
    assert "pkg:pypi/humanize@4.17.0" in shown.stdout and "pkg:pypi/acro@" in shown.stdout
    assert "pkg:deb/debian/python3@" in shown.stdout
    # built FROM exactly the singleuser image of this engine, recorded by id
    assert f"'BASE': '{rows[('singleuser', 1)][0]}'" in shown.stdout
    # the same build again is a no-op that says so
    again = tre(hub, "images", "build", EXAMPLE, "--as", "admin")
    assert again.returncode == 0 and "registered already as projects/example:1" in again.stdout, again.stdout
    assert audit_actions(hub).count("image.built") == 2  # singleuser at set-up, the example once


def test_pinned_workspace_runs_the_digest_with_its_extra_package(hub, example):
    result = tre(hub, "projects", "set-image", "cardio-risk", EXAMPLE, "--as", "admin")
    assert result.returncode == 0, result.stdout + result.stderr
    alice = hub.login("alice")
    container = hub.start(alice, "alice", "cardio-risk")
    try:
        assert container.attrs["Image"] == example
        assert container.labels["tre.image-digest"] == example
        check = container.exec_run(["python3", "-c", "import humanize; print(humanize.intcomma(1234567))"],
                                   user="1000:100")
        assert check.exit_code == 0 and check.output.decode().strip() == "1,234,567", check.output
        singleuser = next(d for n, _, d, _ in registry_rows(hub) if n == "singleuser")
        assert singleuser != example  # the pin, not the platform default, is running
    finally:
        hub.stop(alice, "alice", "cardio-risk")


def test_a_rest_spawn_asking_for_another_image_is_refused(hub, example):
    bob = hub.login("bob")
    refusals = audit_actions(hub).count("workspace.refused")
    reply = requests.post(f"{hub.url}/hub/api/users/bob/servers/diabetes-outcomes",
                          headers=api_headers(hub, bob, "bob"), data=json.dumps({"image": "tre/r:latest"}))
    assert reply.status_code == 403 and "pinned for its project" in reply.json()["message"]
    assert not hub.client.containers.list(filters={"label": [f"tre.instance={hub.instance}", "tre.user=bob"]})
    assert audit_actions(hub).count("workspace.refused") == refusals + 1


def test_retirement_blocks_new_starts_and_shows_running_servers(hub, example):
    erin = hub.login("erin")
    container = hub.start(erin, "erin", "cardio-risk")  # cardio-risk is pinned to the example
    assert container.attrs["Image"] == example
    refused = tre(hub, "images", "retire", f"{EXAMPLE}:1", "--as", "bob")
    assert refused.returncode == 1 and "bob is not an admin" in refused.stdout
    result = tre(hub, "images", "retire", f"{EXAMPLE}:1", "--as", "admin")
    assert result.returncode == 0 and "retired" in result.stdout, result.stdout + result.stderr
    shown = tre(hub, "images", "show", f"{EXAMPLE}:1")
    assert "erin/cardio-risk" in shown.stdout and "/hub/api/users/erin/servers/cardio-risk" in shown.stdout
    assert container.name in shown.stdout
    container.reload()
    assert container.status == "running"  # running servers go on until stopped
    hub.stop(erin, "erin", "cardio-risk")
    reply = hub.press_start(erin, "erin", "cardio-risk")
    assert reply.status_code == 403, hub.log_tail()
    assert "is pinned to image projects/example:1, which is retired" in reply.text
    french = hub.login("erin", language="fr")
    reply = french.get(f"{hub.url}/hub/spawn/erin/cardio-risk")
    assert reply.status_code == 403 and "qui est retirée" in reply.text
    pin = tre(hub, "projects", "set-image", "diabetes-outcomes", f"{EXAMPLE}:1", "--as", "admin")
    assert pin.returncode == 1 and "is retired; pin an active image" in pin.stdout


@pytest.fixture(scope="module")
def site_images(tmp_path_factory) -> Path:
    """A site's own images folder (TRE_IMAGES_DIR) with two images that cannot build."""
    root = tmp_path_factory.mktemp("images")
    (root / "projects" / "typo").mkdir(parents=True)
    shutil.copy(REPO / "images" / "projects" / "Dockerfile", root / "projects" / "Dockerfile")
    (root / "projects" / "typo" / "requirements.txt").write_text("tre-no-such-package-4b1d==1.0\n")
    (root / "broken").mkdir()
    (root / "broken" / "Dockerfile").write_text('ARG BASE\nFROM ${BASE}\nRUN echo "about to fail" && exit 3\n')
    return root


@pytest.mark.parametrize(("name", "step", "output"), [
    ("broken", 'RUN echo "about to fail" && exit 3', "about to fail"),
    ("projects/typo", "pip install", "No matching distribution found for tre-no-such-package-4b1d==1.0"),
])
def test_a_failing_build_names_its_step_and_registers_nothing(hub, site_images, name, step, output):
    before, failures = registry_rows(hub), audit_actions(hub).count("image.build_failed")
    result = tre(hub, "images", "build", name, "--as", "admin", env={"TRE_IMAGES_DIR": str(site_images)})
    assert result.returncode == 1
    assert f"The {name} image did not build: Step " in result.stdout and step in result.stdout, result.stdout
    assert output in result.stdout
    log = Path(result.stdout.split("Full log: ")[1].split(".log")[0] + ".log")
    assert log.is_relative_to(hub.home / "logs") and output in log.read_text()
    assert registry_rows(hub) == before
    assert audit_actions(hub).count("image.build_failed") == failures + 1


def test_an_unknown_image_name_is_refused(hub):
    result = tre(hub, "images", "build", "rstudio", "--as", "admin")
    assert result.returncode == 1 and "There is no image called 'rstudio'" in result.stdout
    result = tre(hub, "images", "register", "r", "--image", "tre/singleuser:latest", "--as", "admin")
    assert result.returncode == 1 and "was built from images/singleuser, not images/r" in result.stdout
    result = tre(hub, "projects", "set-image", "cardio-risk", "rstudio", "--as", "admin")
    assert result.returncode == 1 and "There is no registered image rstudio" in result.stdout


async def run_cell(url: str, token: str, code: str, timeout: float = 60) -> str:
    """Send one execute_request over the kernel's websocket (Jupyter's protocol, as JupyterLab
    does) and return what the cell printed or returned."""
    connection = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {token}"}))
    msg_id, session = uuid.uuid4().hex, uuid.uuid4().hex
    connection.write_message(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test", "session": session,
                   "date": dt.datetime.now(dt.UTC).isoformat(), "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True},
    }))
    output: list[str] = []
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            raw = await asyncio.wait_for(connection.read_message(), timeout=max(remaining, 0.1))
            assert raw is not None, "the kernel's websocket closed"
            message = json.loads(raw)
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                output.append(content["text"])
            elif kind in ("execute_result", "display_data"):
                output.append(content["data"].get("text/plain", ""))
            elif kind == "error":
                raise AssertionError(f"the cell failed: {content['ename']}: {content['evalue']}")
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(output)
    finally:
        connection.close()


def test_the_r_image_runs_an_r_cell_through_the_kernel_protocol(hub):
    registered = tre(hub, "images", "register", "r", "--as", "admin")  # built by ./setup.sh
    assert registered.returncode == 0, registered.stdout + registered.stderr
    pin = tre(hub, "projects", "set-image", "diabetes-outcomes", "r", "--as", "admin")
    assert pin.returncode == 0, pin.stdout + pin.stderr
    bob = hub.login("bob")
    container = hub.start(bob, "bob", "diabetes-outcomes")
    try:
        assert container.attrs["Image"] == hub.client.images.get("tre/r:latest").id
        api = api_headers(hub, bob, "bob")
        base = f"{hub.url}/user/bob/diabetes-outcomes"
        assert "ir" in requests.get(f"{base}/api/kernelspecs", headers=api).json()["kernelspecs"]
        kernel = requests.post(f"{base}/api/kernels", headers=api, json={"name": "ir"})
        assert kernel.status_code == 201, kernel.text
        channels = f"{base.replace('http', 'ws', 1)}/api/kernels/{kernel.json()['id']}/channels"
        token = api["Authorization"].split()[1]
        assert asyncio.run(run_cell(channels, token, "cat(sum(1:10))")) == "55"
        # the packages health data analysts expect, from Debian's archive
        loaded = asyncio.run(run_cell(channels, token, 'for (p in c("data.table", "dplyr", "survival", "ggplot2")) '
                                                        'suppressPackageStartupMessages(library(p, character.only = TRUE)); '
                                                        'cat(nrow(survival::lung))'))
        assert loaded == "228"
    finally:
        hub.stop(bob, "bob", "diabetes-outcomes")


def test_the_images_page_is_for_admins_in_english_and_french(hub, example):
    from bs4 import BeautifulSoup

    pages = f"{hub.url}/services/catalogue/images"
    admin = hub.login("admin", language="fr")
    reply = admin.get(pages)
    assert reply.status_code == 200 and reply.url == pages, reply.text[:500]
    page = BeautifulSoup(reply.text, "html.parser")
    assert page.h1.get_text() == "Images d’analyse"
    row = page.find("tr", attrs={"data-image": f"{EXAMPLE}:1"})
    assert example in row.get_text() and "humanize" in row.select_one(".packages").get_text()
    assert page.find("tr", attrs={"data-image": "singleuser:1"}) is not None
    assert page.find("link", rel="stylesheet")["href"] == "/hub/static/css/style.min.css"
    alice = hub.login("alice")
    refused = alice.get(pages)
    assert refused.status_code == 403 and "Only admins see the analysis images" in refused.text
    assert "nav-images" not in alice.get(f"{hub.url}/services/catalogue/").text


def test_an_image_the_engine_lost_is_neither_pinned_nor_started(hub):
    """A registered digest that no longer matches anything in the engine (removed or rebuilt
    since): pinning it is refused, and a project pinned to it does not start."""
    singleuser = hub.client.images.get("tre/singleuser:latest").id
    doomed, _ = hub.client.images.build(
        fileobj=io.BytesIO(f"FROM {singleuser}\nLABEL tre.test=doomed-{hub.instance}\n".encode()),
        labels={"tre.managed": "true", "tre.instance": hub.instance}, rm=True)
    try:
        registered = tre(hub, "images", "register", "singleuser", "--image", doomed.id, "--as", "admin")
        assert registered.returncode == 0 and "registered singleuser:2" in registered.stdout, registered.stdout
        pinned = tre(hub, "projects", "set-image", "cardio-risk", "singleuser:2", "--as", "admin")
        assert pinned.returncode == 0, pinned.stdout
    finally:
        hub.client.images.remove(doomed.id)
    refused = tre(hub, "projects", "set-image", "diabetes-outcomes", "singleuser:2", "--as", "admin")
    assert refused.returncode == 1 and "no longer has image singleuser:2" in refused.stdout, refused.stdout
    alice = hub.login("alice")
    reply = alice.get(f"{hub.url}/hub/spawn/alice/cardio-risk")
    assert reply.status_code == 403, hub.log_tail()
    assert f"The image of project cardio-risk (singleuser:2, {doomed.id}) is no longer on this machine" in reply.text
    assert not hub.client.containers.list(filters={"label": [f"tre.instance={hub.instance}", "tre.user=alice"]})
    # the platform default goes back to the image that exists
    assert tre(hub, "images", "retire", "singleuser:2", "--as", "admin").returncode == 0
