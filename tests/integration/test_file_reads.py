"""Bulk copies through the browser, tried for real (issue 19): files a researcher copies into
/project (a dataset's Parquet, a zip archive, a pickle, an over-limit CSV, a Parquet renamed .csv)
cannot be fetched through any route of the workspace's server, each refusal is on the hub's audit
log, and a person's daily volume of reads ends in a block and an alert to the stewards. Beside each
probe, a control that the same request serves a small CSV, an image or a notebook, so that a probe
that fails for another reason (a wrong URL, a stopped server) cannot pass as a wall.

One dedicated hub with a small read limit (256 KB) and a small daily threshold, a mail server
(aiosmtpd) for the stewards' alert, and Chromium for JupyterLab itself."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
from email import message_from_bytes

import pytest
import requests
from playwright.sync_api import expect
from sqlalchemy import select, update

from tre_core.db import session_scope
from datasets.models import AuditEvent, Person
from tre_core.settings import TRESettings
from tests.integration.conftest import Hub
from tests.integration.test_browser import PAGE_MS, WORKSPACE_MS, sign_in

pytestmark = pytest.mark.integration

READ_LIMIT = 256 * 1024
DAILY_LIMIT = 6 * 1024 * 1024
USER, PROJECT = "alice", "cardio-risk"

# What the researcher puts in /project, inside the workspace (as uid 1000): data in bulk, and the
# controls (what JupyterLab must still show).
MAKE_FILES = r"""
import glob, io, pickle, shutil, zipfile, json
import matplotlib; matplotlib.use("Agg")
import matplotlib.pyplot as plt, pandas as pd
part = sorted(glob.glob("/data/claims/**/*.parquet", recursive=True))[0]  # one partition
shutil.copyfile(part, "/project/x.parquet")  # not copy: the dataset files are read-only (0444)
shutil.copyfile(part, "/project/sneaky.csv")
with zipfile.ZipFile("/project/archive.zip", "w") as archive:
    archive.write(part, "claims.parquet")
claims = pd.read_parquet("/data/claims")
pickle.dump(claims.head(50), open("/project/model.pkl", "wb"))
claims.to_csv("/project/big.csv", index=False)
assert len(open("/project/big.csv", "rb").read()) > %(limit)d
claims.head(20).to_csv("/project/small.csv", index=False)
plt.plot([1, 2, 3]); plt.savefig("/project/figure.png")
json.dump({"cells": [{"cell_type": "code", "execution_count": None, "id": "c1", "metadata": {},
                      "outputs": [], "source": "print('hello')"}],
           "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                       "language": "python"}},
           "nbformat": 4, "nbformat_minor": 5}, open("/project/analysis.ipynb", "w"))
""" % {"limit": READ_LIMIT}

REFUSED = ("x.parquet", "sneaky.csv", "archive.zip", "model.pkl", "big.csv")
# Every way the contents API can be asked for a file's content.
CONTENT_QUERIES = ("", "?content=1", "?content=1&format=base64", "?content=1&format=text", "?type=file",
                   "?type=file&format=base64", "?type=notebook", "?content=1&hash=1", "?type=file&content=1&format=base64&hash=1")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def inbox():
    from aiosmtpd.controller import Controller

    class Inbox:
        def __init__(self) -> None:
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(message_from_bytes(envelope.content))
            return "250 OK"

    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


@pytest.fixture(scope="module")
def reads_hub(docker_client, inbox) -> Hub:
    hub = Hub(docker_client, settings={
        "TRE_WORKSPACE_READ_MAX_BYTES": str(READ_LIMIT), "TRE_WORKSPACE_DAILY_READ_BYTES": str(DAILY_LIMIT),
        "TRE_SMTP_HOST": "127.0.0.1", "TRE_SMTP_PORT": str(inbox[1]), "TRE_SMTP_FROM": "tre@example.org"})
    with session_scope(TRESettings(home=hub.home).catalogue_url) as session:
        session.execute(update(Person).where(Person.username == "steward").values(email="steward@example.org"))
    try:
        hub.start_process()
        yield hub
    finally:
        hub.close()


@pytest.fixture(scope="module")
def workspace(reads_hub):
    """alice's cardio-risk workspace, with the files above in /project, and her signed-in session."""
    session = reads_hub.login(USER)
    container = reads_hub.start(session, USER, PROJECT)
    result = container.exec_run(["python3", "-c", MAKE_FILES], user="1000:100")
    assert result.exit_code == 0, result.output.decode()
    yield container, session
    reads_hub.stop(session, USER, PROJECT)


def server_url(hub: Hub) -> str:
    return f"{hub.url}/user/{USER}/{PROJECT}"


def xsrf_headers(hub: Hub, session: requests.Session) -> dict[str, str]:
    return {"X-XSRFToken": session.cookies.get("_xsrf", path=f"/user/{USER}/{PROJECT}/"),
            "Referer": f"{server_url(hub)}/lab"}


def _untar(container, name: str) -> bytes:
    import io
    import tarfile

    stream, _ = container.get_archive(f"/project/{name}")
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        return tar.extractfile(name).read()


def leaks(reply: requests.Response, data: bytes) -> bool:
    """Whether a reply carries a recognisable piece of the file, raw, as text or in base64."""
    piece = data[1000:1400] if len(data) > 1400 else data
    encoded = base64.b64encode(data[:3000]).decode()[100:400]
    return piece in reply.content or encoded in reply.text.replace("\n", "") or \
        piece.decode("latin-1") in reply.text


def audit_rows(hub: Hub, action: str) -> list[AuditEvent]:
    with session_scope(TRESettings(home=hub.home).catalogue_url) as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)))


def test_jupyterlab_opens_and_saves_a_notebook_a_csv_and_an_image_and_refuses_a_parquet(
        reads_hub, workspace, open_page):
    container, _ = workspace
    page = open_page("en-GB")
    sign_in(page, reads_hub, USER)
    page.goto(f"{server_url(reads_hub)}/lab")
    expect(page.locator("#filebrowser .jp-DirListing-content")).to_be_visible(timeout=WORKSPACE_MS)
    listing = page.locator("#filebrowser .jp-DirListing-itemText")

    listing.filter(has_text=re.compile(r"^analysis\.ipynb$")).dblclick()
    editor = page.locator(".jp-NotebookPanel .jp-Cell .cm-content").first
    expect(editor).to_contain_text("print('hello')", timeout=PAGE_MS)
    editor.click()
    page.keyboard.press("End")
    page.keyboard.type("  # saved", delay=80)
    page.keyboard.press("Control+s")
    wait_until(lambda: b"# saved" in _untar(container, "analysis.ipynb"), "the notebook saved")

    listing.filter(has_text=re.compile(r"^figure\.png$")).dblclick()
    image = page.locator(".jp-ImageViewer img")
    expect(image).to_be_visible(timeout=PAGE_MS)
    assert page.evaluate("img => img.naturalWidth", image.element_handle()) > 100

    listing.filter(has_text=re.compile(r"^small\.csv$")).click(button="right")
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Open With$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Editor$")).click()
    csv_editor = page.locator(".jp-FileEditor .cm-content").last
    expect(csv_editor).to_contain_text("person_id", timeout=PAGE_MS)
    csv_editor.click()
    page.keyboard.press("Control+End")
    page.keyboard.type("edited", delay=80)
    page.keyboard.press("Control+s")
    wait_until(lambda: b"edited" in _untar(container, "small.csv"), "the CSV saved")

    listing.filter(has_text=re.compile(r"^x\.parquet$")).dblclick()
    expect(page.locator(".jp-Dialog-content")).to_contain_text("egress review", timeout=PAGE_MS)


def wait_until(predicate, what: str, timeout: float = 30) -> None:
    from tests.integration.conftest import wait_for

    wait_for(predicate, timeout, what)


def test_the_contents_api_serves_what_jupyterlab_renders(reads_hub, workspace):
    """The controls: the same requests that are refused below serve a small CSV, an image, a notebook."""
    container, session = workspace
    small = _untar(container, "small.csv")
    reply = session.get(f"{server_url(reads_hub)}/api/contents/small.csv?content=1&format=text")
    assert reply.status_code == 200 and reply.json()["content"].encode() == small
    png = _untar(container, "figure.png")
    reply = session.get(f"{server_url(reads_hub)}/api/contents/figure.png?content=1&format=base64")
    assert reply.status_code == 200 and base64.b64decode(reply.json()["content"]) == png
    reply = session.get(f"{server_url(reads_hub)}/api/contents/analysis.ipynb")
    assert reply.status_code == 200 and reply.json()["type"] == "notebook"
    reads = [e for e in audit_rows(reads_hub, "workspace.file.read") if e.details["path"] == "figure.png"]
    assert reads and reads[-1].actor == USER and reads[-1].project == PROJECT
    assert reads[-1].details["sha256"] == hashlib.sha256(png).hexdigest() and reads[-1].details["size"] == len(png)
    # metadata without content (the file browser's listing) is still there for the refused files
    reply = session.get(f"{server_url(reads_hub)}/api/contents/x.parquet?content=0")
    assert reply.status_code == 200 and reply.json()["content"] is None


@pytest.mark.parametrize("name", REFUSED)
def test_bulk_files_cannot_be_fetched_through_any_route(reads_hub, workspace, name):
    container, session = workspace
    data = _untar(container, name)
    base = server_url(reads_hub)
    before = len(audit_rows(reads_hub, "workspace.file.refused"))
    for query in CONTENT_QUERIES:
        reply = session.get(f"{base}/api/contents/{name}{query}")
        assert reply.status_code in (403, 413), (query, reply.status_code, reply.text[:300])
        assert "egress review" in reply.json()["message"] and not leaks(reply, data), query
    for url in (f"{base}/files/{name}", f"{base}/nbconvert/html/{name}", f"{base}/nbconvert/script/{name}?download=1",
                f"{base}/view/{name}"):
        reply = session.get(url)
        assert not leaks(reply, data), url
        assert reply.status_code == 403 or url.endswith(f"/view/{name}"), (url, reply.status_code)
    # checkpoints: made and listed, never served; the copy they keep is hidden from the contents API
    made = session.post(f"{base}/api/contents/{name}/checkpoints", headers=xsrf_headers(reads_hub, session))
    assert made.status_code == 201 and set(made.json()) == {"id", "last_modified"}
    listed = session.get(f"{base}/api/contents/{name}/checkpoints")
    assert listed.status_code == 200 and not leaks(listed, data)
    stem, dot, extension = name.partition(".")
    hidden = session.get(f"{base}/api/contents/.ipynb_checkpoints/{stem}-checkpoint{dot}{extension}?content=1")
    assert hidden.status_code in (403, 404) and not leaks(hidden, data)
    refusals = audit_rows(reads_hub, "workspace.file.refused")[before:]
    assert len([e for e in refusals if e.details["path"] == name]) >= len(CONTENT_QUERIES)
    assert all(e.actor == USER and e.project == PROJECT for e in refusals)
    assert refusals[-1].details["sha256"] == hashlib.sha256(data).hexdigest()


def test_a_refusal_speaks_french_to_a_french_browser(reads_hub, workspace):
    _, session = workspace
    reply = session.get(f"{server_url(reads_hub)}/api/contents/x.parquet?content=1&format=base64",
                        headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    assert reply.status_code == 403 and "revue des exports" in reply.json()["message"]


# Every route of the workspace's server (after /user/<name>/<project>), and why it cannot hand over a
# file's bytes in bulk. Kinds: "guarded" (the contents manager: render kinds, size limit, audit,
# daily volume), "refused" (403 whatever is asked), "no file bytes" (answers about the server or
# the session), "image" (files of the image itself, read-only, none the researcher can write),
# "capped" (reads files of the home, e.g. JupyterLab's settings and workspaces: every response held
# to about twice the read limit by the workspace's response cap), "stream" (websockets: a kernel's
# or a terminal's output, the residual channel named in the README's security section).
ROUTES = {
    r"(.*)$": "no file bytes", r"/.*/$": "no file bytes", r"/?$": "no file bytes",
    r"/(?P<mode>lab|doc)(?P<workspace>/workspaces/[a-zA-Z0-9\-\_]+)?(?P<tree>/tree/.*)?$": "no file bytes",
    r"/(favicon\.ico)$": "image", r"/(robots\.txt)$": "image", r"/(robots\.txt|favicon\.ico)$": "image",
    r"/api$": "no file bytes", r"/api/config/(?P<section_name>\w+)$": "capped",
    r"/api/contents(?P<path>(?:(?:/[^/]+)+|/?))$": "guarded",
    r"/api/contents(?P<path>(?:(?:/[^/]+)+|/?))/checkpoints$": "no file bytes",
    r"/api/contents(?P<path>(?:(?:/[^/]+)+|/?))/checkpoints/(?P<checkpoint_id>[\w-]+)$": "no file bytes",
    r"/api/contents(?P<path>(?:(?:/[^/]+)+|/?))/trust$": "guarded",
    r"/api/events$": "no file bytes", r"/api/events/subscribe$": "no file bytes",
    r"/api/kernels$": "no file bytes", r"/api/kernels/(?P<kernel_id>\w+-\w+-\w+-\w+-\w+)$": "no file bytes",
    r"/api/kernels/(?P<kernel_id>\w+-\w+-\w+-\w+-\w+)/(?P<action>restart|interrupt)$": "no file bytes",
    r"/api/kernels/(?P<kernel_id>\w+-\w+-\w+-\w+-\w+)/channels$": "stream",
    r"/api/kernelspecs$": "no file bytes", r"/api/kernelspecs/(?P<kernel_name>[\w\.\-%]+)$": "no file bytes",
    r"/api/me$": "no file bytes", r"/api/nbconvert$": "no file bytes", r"/api/notebooks/?(.*)$": "no file bytes",
    r"/api/resolvePath$": "no file bytes", r"/api/security/csp-report$": "no file bytes",
    r"/api/sessions$": "no file bytes", r"/api/sessions/(?P<session_id>\w+-\w+-\w+-\w+-\w+)$": "no file bytes",
    r"/api/shutdown$": "no file bytes", r"/api/spec.yaml$": "image", r"/api/status$": "no file bytes",
    r"/api/terminals$": "no file bytes", r"/api/terminals/(\w+)$": "no file bytes",
    r"/files/(.*)$": "refused",
    r"/kernelspecs/(?P<kernel_name>[\w\.\-%]+)/(?P<path>.*)$": "image",
    r"/lab/.*$": "no file bytes", r"/lab/api/build$": "no file bytes", r"/lab/api/extensions$": "no file bytes",
    r"/lab/api/licenses/(.*)$": "image", r"/lab/api/listings/(.*)$": "image", r"/lab/api/news$": "no file bytes",
    r"/lab/api/plugins$": "capped", r"/lab/api/settings/(?P<schema_name>.+)$": "capped",
    r"/lab/api/settings/?$": "capped", r"/lab/api/themes/(.*)$": "image",
    r"/lab/api/translations/(?P<locale>.*)$": "image", r"/lab/api/translations/?$": "image",
    r"/lab/api/update$": "no file bytes", r"/lab/api/workspaces/(?P<space_name>.+)$": "capped",
    r"/lab/api/workspaces/?$": "capped", r"/lab/extensions/(.*)$": "image",
    r"/logout$": "no file bytes", r"/lsp/status$": "no file bytes",
    r"/lsp/ws/(?P<language_server>.*)$": "stream",  # no language server is installed in the image
    r"/metrics$": "no file bytes",
    r"/nbconvert/(?P<format>\w+)$": "refused", r"/nbconvert/(?P<format>\w+)(?P<path>(?:(?:/[^/]+)+|/?))$": "refused",
    r"/nbconvert/.*$": "refused", r"/oauth_callback$": "no file bytes",
    r"/static/(.*)$": "image", r"/static/lab/(.*)$": "image", r"/terminals/websocket/(\w+)$": "stream",
    r"/view(?P<path>(?:(?:/[^/]+)+|/?))$": "no file bytes",  # a page whose frame asks /files/
}


def test_every_route_of_the_server_is_known_to_serve_no_file_bytes_or_to_be_guarded(workspace):
    """The routes the running server logged once all its extensions were loaded: a new extension's
    route fails this test until someone decides which kind it is (ROUTES)."""
    container, _ = workspace
    line = next(line for line in container.logs().decode().splitlines() if "tre_workspace routes:" in line)
    found = {re.sub(r"^/user/[^/]+/[^/]+", "", pattern) for pattern, _ in json.loads(line.split("tre_workspace routes:", 1)[1])}
    assert found == set(ROUTES)
    # the server's own handlers of the two refused prefixes come after the workspace's 403
    order = [re.sub(r"^/user/[^/]+/[^/]+", "", p) for p, _ in json.loads(line.split("tre_workspace routes:", 1)[1])]
    assert order.index(r"/nbconvert/.*$") < order.index(r"/nbconvert/(?P<format>\w+)$")


def test_routes_that_read_the_home_are_held_to_the_cap(reads_hub, workspace):
    """JupyterLab's workspaces (and settings) are files of the home that the server hands back: a
    researcher's code can fill one with a dataset. Served while small (the control), refused once
    over the cap."""
    container, session = workspace
    url = f"{server_url(reads_hub)}/lab/api/workspaces/probe"
    put = session.put(url, json={"data": {}, "metadata": {"id": "probe"}}, headers=xsrf_headers(reads_hub, session))
    assert put.status_code == 204, put.text
    assert session.get(url).status_code == 200
    fill = container.exec_run(["python3", "-c", (
        "import base64, glob, json, os\n"
        "[path] = [p for p in glob.glob(os.path.expanduser('~/.jupyter/lab/workspaces/*')) if 'probe' in p]\n"
        "space = json.load(open(path))\n"
        "space['data']['blob'] = base64.b64encode(open('/project/big.csv', 'rb').read()).decode()\n"
        "json.dump(space, open(path, 'w'))\n")], user="1000:100", environment={"HOME": f"/home/{USER}"})
    assert fill.exit_code == 0, fill.output.decode()
    reply = session.get(url)
    assert reply.status_code == 413 and "egress review" in reply.json()["message"]
    assert not leaks(reply, _untar(container, "big.csv"))


def test_only_a_workspace_servers_own_token_records_reads(reads_hub, workspace):
    """The browser's hub session, or a person's own API token, cannot write to (or probe) the record."""
    _, session = workspace
    body = {"path": "small.csv", "size": 1, "sha256": None, "outcome": "read", "kind": "text"}
    url = f"{reads_hub.url}/hub/api/tre/file-reads"
    by_cookie = session.post(url, json=body, headers={"X-XSRFToken": session.cookies.get("_xsrf", path="/hub/"),
                                                      "Referer": f"{reads_hub.url}/hub/home"})
    assert by_cookie.status_code == 403, by_cookie.text
    token = session.post(f"{reads_hub.url}/hub/api/users/{USER}/tokens", json={"note": "mine"},
                         headers={"X-XSRFToken": session.cookies.get("_xsrf", path="/hub/"),
                                  "Referer": f"{reads_hub.url}/hub/home"}).json()["token"]
    by_token = requests.post(url, json=body, headers={"Authorization": f"token {token}"})
    assert by_token.status_code == 403, by_token.text


def test_no_content_when_the_hub_cannot_record_the_read(reads_hub, workspace):
    """Fail closed: with the hub down (crashed: the proxy, in a session of its own, and the workspace
    go on), the small CSV that the controls were served is refused; once the hub is back, it is
    served again."""
    _, session = workspace
    url = f"{server_url(reads_hub)}/api/contents/small.csv?content=1&format=text"
    assert session.get(url).status_code == 200
    reads_hub.crash()
    try:
        reply = session.get(url)
        assert reply.status_code == 503 and "did not answer" in reply.json()["message"], reply.text[:300]
    finally:
        reads_hub.start_process()
    assert session.get(url).status_code == 200


def test_the_daily_volume_blocks_reads_and_alerts_the_stewards(reads_hub, workspace, inbox):
    """Last in this module: alice is blocked for the rest of the day afterwards."""
    container, session = workspace
    make = container.exec_run(["python3", "-c", "open('/project/chunk.txt', 'w').write('x' * 250_000)"],
                              user="1000:100")
    assert make.exit_code == 0
    url = f"{server_url(reads_hub)}/api/contents/chunk.txt?content=1&format=text"
    statuses = []
    for _ in range(DAILY_LIMIT // 250_000 + 2):
        reply = session.get(url)
        statuses.append(reply.status_code)
        if reply.status_code != 200:
            break
    assert statuses[0] == 200 and statuses[-1] == 403, statuses
    assert "today's volume" in reply.json()["message"]
    # the small CSV served by the controls above is refused now too, for the rest of the day
    reply = session.get(f"{server_url(reads_hub)}/api/contents/small.csv?content=1&format=text")
    assert reply.status_code == 403 and "today's volume" in reply.json()["message"]
    [alert] = audit_rows(reads_hub, "workspace.reads.blocked")
    assert alert.actor == USER and alert.project == PROJECT and alert.details["stewards_alerted"] == ["steward"]
    blocked = [e for e in audit_rows(reads_hub, "workspace.file.refused") if e.details.get("reason") == "daily-volume"]
    assert {e.details["path"] for e in blocked} == {"chunk.txt", "small.csv"}
    messages = inbox[0].messages
    from tests.integration.conftest import wait_for

    wait_for(lambda: messages, 30, "the stewards' email")
    assert messages[0]["To"] == "steward@example.org" and "alice" in messages[0]["Subject"]
