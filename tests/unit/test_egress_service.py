"""The egress service over HTTP, in-process, on a real TRE database (SQLite and PostgreSQL): the
authorisation matrix of every API endpoint for every role, XSRF, escaping, sandboxed views, CSV
neutralisation, downloads and the OpenAPI document. The one fake is the hub's user lookup."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import socket
import threading
import zipfile
from collections.abc import Callable, Iterator

import nbformat
import pytest
import requests
from bs4 import BeautifulSoup

from datasets import audit
from tre_core.db import session_scope
from datasets.models import AuditEvent, AuditHead, Membership, MemberRole, Person
from sqlalchemy import select
from egress_review.app import API_ROUTES, Base, Site, make_app, openapi_path
from tests.unit.egress_fixtures import make_airlock, submitted_request

PREFIX = "/services/egress/"
ROLES = {  # role → (username, how they authenticate)
    "author": ("alice", "token"), "other member": ("fred", "token"), "other project": ("bob", "token"),
    "checker member": ("erin", "token"), "checker": ("carol", "token"), "admin": ("admin", "token"),
    "anonymous": (None, None),
}


async def hub_lookup_double(self: Base) -> None:
    """Stands in for the hub's answer: ``Authorization: token NAME`` is a valid token of NAME, and a
    ``test-user`` cookie a signed-in browser session of that name. Everything after it is real."""
    scheme, _, name = self.request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "token" and name:
        self._token_authenticated = True
        self._hub_auth_user_cache = {"name": name, "kind": "user"}
    elif cookie := self.get_cookie("test-user"):
        self._hub_auth_user_cache = {"name": cookie, "kind": "user"}
    else:
        self._hub_auth_user_cache = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def service(catalogue_url, tmp_path, monkeypatch) -> Iterator[tuple[str, object]]:
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "test-only")
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://127.0.0.1:9/hub/api")
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", PREFIX)
    monkeypatch.setenv("JUPYTERHUB_CLIENT_ID", "service-egress")
    monkeypatch.setenv("JUPYTERHUB_OAUTH_CALLBACK_URL", PREFIX + "oauth_callback")
    monkeypatch.setattr(Base, "ask_hub", hub_lookup_double)
    with session_scope(catalogue_url) as session:  # a member of cardio-risk who is no checker
        session.add(Person(username="fred", display_name="Fred Petit"))
        session.add(Membership(project_slug="cardio-risk", username="fred", role=MemberRole.RESEARCHER))
    airlock = make_airlock(catalogue_url, tmp_path)
    app = make_app(Site(airlock, prefix=PREFIX, hub_prefix="/hub/"))
    port, loop, started = free_port(), asyncio.new_event_loop(), threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        server = app.listen(port, "127.0.0.1")
        loop.call_soon(started.set)
        loop.run_forever()
        server.stop()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield f"http://127.0.0.1:{port}{PREFIX}", airlock
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def call(base: str, role: str, method: str, path: str, body: dict | None = None) -> requests.Response:
    username, _ = ROLES[role]
    headers = {"Authorization": f"token {username}"} if username else {}
    return requests.request(method, base + path, json=body, headers=headers, allow_redirects=False, timeout=30)


def head(url: str) -> int:
    with session_scope(url) as session:
        return session.get(AuditHead, 1).seq


def draft_with_file(airlock) -> int:
    request = airlock.create("alice", "cardio-risk", "Draft")
    airlock.add_file("alice", request, "outputs/table.csv", "Table 1", "output", context="c", controls="k")
    return request


def reviewed(airlock) -> int:
    request = submitted_request(airlock)
    table = next(f.id for f in airlock.get("alice", request).files if f.kind == "output")
    for checker in ("carol", "dave"):
        airlock.review(checker, request, {table: "approve"})
    return request


def released(airlock) -> int:
    request = reviewed(airlock)
    airlock.release("dave", request)
    return request


def table_of(airlock, request: int) -> int:
    return next(f.id for f in airlock.get("alice", request).files if f.kind == "output")


# endpoint → (method, path for a request id, body, how to prepare the request, expected status per role)
MATRIX: dict[str, tuple[str, Callable[[int], str], Callable | None, Callable | None, dict[str, int]]] = {
    "list": ("GET", lambda r: "api/requests", None, None,
             {"author": 200, "other member": 200, "other project": 200, "checker member": 200, "checker": 200,
              "admin": 200, "anonymous": 403}),
    "create": ("POST", lambda r: "api/requests", lambda a, r: {"project": "cardio-risk", "title": "T"}, None,
               {"author": 201, "other member": 201, "other project": 403, "checker member": 201, "checker": 403,
                "admin": 403, "anonymous": 403}),
    "read": ("GET", lambda r: f"api/requests/{r}", None, submitted_request,
             {"author": 200, "other member": 200, "other project": 404, "checker member": 200, "checker": 200,
              "admin": 200, "anonymous": 403}),
    "read draft": ("GET", lambda r: f"api/requests/{r}", None, draft_with_file,
                   {"author": 200, "other member": 200, "other project": 404, "checker member": 200,
                    "checker": 404, "admin": 200, "anonymous": 403}),
    "add file": ("POST", lambda r: f"api/requests/{r}/files",
                 lambda a, r: {"path": "outputs/code.py", "group": "Code", "kind": "supporting"}, draft_with_file,
                 {"author": 201, "other member": 403, "other project": 404, "checker member": 403, "checker": 404,
                  "admin": 403, "anonymous": 403}),
    "submit": ("POST", lambda r: f"api/requests/{r}/submit", None, draft_with_file,
               {"author": 200, "other member": 403, "other project": 404, "checker member": 403, "checker": 404,
                "admin": 403, "anonymous": 403}),
    "review": ("POST", lambda r: f"api/requests/{r}/reviews",
               lambda a, r: {"decisions": {str(table_of(a, r)): "approve"}}, submitted_request,
               {"author": 403, "other member": 403, "other project": 404, "checker member": 403, "checker": 200,
                "admin": 403, "anonymous": 403}),
    "comment": ("POST", lambda r: f"api/requests/{r}/comments", lambda a, r: {"text": "A note."}, submitted_request,
                {"author": 201, "other member": 403, "other project": 404, "checker member": 403, "checker": 201,
                 "admin": 403, "anonymous": 403}),
    "return": ("POST", lambda r: f"api/requests/{r}/return", lambda a, r: {"comment": "Round."}, reviewed,
               {"author": 403, "other member": 403, "other project": 404, "checker member": 403, "checker": 200,
                "admin": 403, "anonymous": 403}),
    "reject": ("POST", lambda r: f"api/requests/{r}/reject", None, reviewed,
               {"author": 403, "other member": 403, "other project": 404, "checker member": 403, "checker": 200,
                "admin": 403, "anonymous": 403}),
    "release": ("POST", lambda r: f"api/requests/{r}/release", None, reviewed,
                {"author": 403, "other member": 403, "other project": 404, "checker member": 403, "checker": 200,
                 "admin": 403, "anonymous": 403}),
    "withdraw": ("POST", lambda r: f"api/requests/{r}/withdraw", None, submitted_request,
                 {"author": 200, "other member": 403, "other project": 404, "checker member": 403, "checker": 403,
                  "admin": 403, "anonymous": 403}),
    "download": ("GET", lambda r: f"api/requests/{r}/released/table.csv", None, released,
                 {"author": 200, "other member": 200, "other project": 404, "checker member": 200, "checker": 403,
                  "admin": 403, "anonymous": 403}),
}


def test_the_matrix_covers_every_api_route():
    covered = {openapi_path(r) for r in API_ROUTES} - {"/api/openapi.json"}
    assert {"/" + MATRIX[e][1](0).replace("/0", "/{id}").replace("table.csv", "{filename}") for e in MATRIX} == covered


@pytest.mark.parametrize("endpoint", list(MATRIX))
def test_authorisation_matrix(service, catalogue_url, endpoint):
    base, airlock = service
    method, path, body, prepare, expected = MATRIX[endpoint]
    seen = {}
    for role in ROLES:
        request = prepare(airlock) if prepare else 0
        before = head(catalogue_url)
        response = call(base, role, method, path(request), body(airlock, request) if body else None)
        seen[role] = response.status_code
        if response.status_code >= 400:
            assert response.headers["Content-Type"].startswith("application/json")
            assert response.json()["error"], (role, response.text)  # says what to do
            assert head(catalogue_url) == before, f"{role}: a refused act left an audit row"
    assert seen == expected


def test_api_errors_say_what_to_do_with_the_right_status(service):
    base, airlock = service
    request = submitted_request(airlock)
    conflict = call(base, "author", "POST", f"api/requests/{request}/submit")
    assert conflict.status_code == 409 and "submitted" in conflict.json()["error"]
    bad = call(base, "author", "POST", "api/requests", {"project": "cardio-risk"})
    assert bad.status_code == 400 and "title" in bad.json()["error"]
    attack = call(base, "author", "POST", f"api/requests/{airlock.create('alice', 'cardio-risk', 'x')}/files",
                  {"path": "../../diabetes-outcomes/shared/x.csv", "group": "G", "kind": "output"})
    assert attack.status_code == 400 and "leaves the project folder" in attack.json()["error"]
    assert call(base, "author", "GET", "api/nothing").status_code == 404


def test_the_openapi_document_lists_every_route_and_no_other(service):
    base, _ = service
    document = requests.get(base + "api/openapi.json", timeout=10).json()
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == {openapi_path(route) for route in API_ROUTES}


def browser(base: str, username: str) -> requests.Session:
    session = requests.Session()
    session.cookies.set("test-user", username, domain="127.0.0.1", path="/")
    return session


def xsrf_of(page: requests.Response) -> str:
    return BeautifulSoup(page.text, "html.parser").find("input", attrs={"name": "_xsrf"})["value"]


def test_forms_need_their_xsrf_token_and_an_api_call_by_cookie_too(service, catalogue_url):
    base, airlock = service
    alice = browser(base, "alice")
    before = head(catalogue_url)
    forged = alice.post(base + "new", data={"project": "cardio-risk", "title": "Forged"}, allow_redirects=False)
    assert forged.status_code == 403 and head(catalogue_url) == before
    forged_api = alice.post(base + "api/requests", json={"project": "cardio-risk", "title": "Forged"})
    assert forged_api.status_code == 403 and head(catalogue_url) == before
    page = alice.get(base + "new")
    created = alice.post(base + "new", data={"project": "cardio-risk", "title": "Real", "_xsrf": xsrf_of(page)},
                         allow_redirects=False)
    assert created.status_code == 303 and head(catalogue_url) == before + 1


def test_a_request_through_the_pages_from_draft_to_download(service):
    base, airlock = service
    alice, carol, dave = (browser(base, name) for name in ("alice", "carol", "dave"))
    page = alice.get(base + "new")
    assert [o["value"] for o in BeautifulSoup(page.text, "html.parser").select("#project option")] == ["cardio-risk"]
    created = alice.post(base + "new", data={"project": "cardio-risk", "title": "Readmissions",
                                             "_xsrf": xsrf_of(page)})
    request_page = BeautifulSoup(created.text, "html.parser")
    rid = int(created.url.rstrip("/").rsplit("/", 1)[1])
    outputs = alice.get(base + f"requests/{rid}", params={"folder": "outputs"})
    assert "outputs/table.csv" in [e["data-path"] for e in BeautifulSoup(outputs.text, "html.parser")
                                  .select(".workspace-entry")]
    alice.post(base + f"requests/{rid}/files", data={
        "path": "outputs/table.csv", "group": "Table 1", "kind": "output", "context": "Readmissions by region",
        "controls": "Counts under 10 suppressed", "_xsrf": xsrf_of(outputs)})
    page = alice.get(base + f"requests/{rid}")
    alice.post(base + f"requests/{rid}/submit", data={"_xsrf": xsrf_of(page)})
    assert airlock.get("alice", rid).state == "submitted"
    assert request_page.find(id="request-state") is not None
    for checker in (carol, dave):
        queue = BeautifulSoup(checker.get(base + "queue").text, "html.parser")
        assert queue.find(id=f"queue-{rid}") is not None
        review = checker.get(base + f"reviews/{rid}")
        soup = BeautifulSoup(review.text, "html.parser")
        assert soup.find(id=f"table-{table_of(airlock, rid)}").find_all("td")[0].get_text() == "region"
        # The automatic checks ran at submission: the table passes every rule, and says so.
        assert soup.find(id=f"outcome-{table_of(airlock, rid)}")["data-outcome"] == "pass"
        assert soup.find("li", attrs={"data-rule": "threshold"})["data-status"] == "pass"
        checker.post(base + f"requests/{rid}/reviews", data={
            f"decision-{table_of(airlock, rid)}": "approve", "comment": "", "_xsrf": xsrf_of(review)})
    review = carol.get(base + f"reviews/{rid}")
    asked = carol.post(base + f"requests/{rid}/release", data={"_xsrf": xsrf_of(review)})
    # a release is asked again before it is done: the first press only opens the confirmation
    assert BeautifulSoup(asked.text, "html.parser").find("dialog", id="confirm-release") is not None
    assert airlock.get("alice", rid).state == "reviewed"
    carol.post(base + f"requests/{rid}/release", data={"_xsrf": xsrf_of(asked), "confirmed": "yes"})
    page = BeautifulSoup(alice.get(base + f"requests/{rid}").text, "html.parser")
    assert page.find(id="request-state")["data-state"] == "released"
    reviewed_sha = page.find(id=f"file-{table_of(airlock, rid)}")["data-sha256"]
    download = alice.get(base + f"requests/{rid}/released/table.csv")
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert hashlib.sha256(download.content).hexdigest() == reviewed_sha
    archive = zipfile.ZipFile(io.BytesIO(alice.get(base + f"requests/{rid}/released.zip").content))
    assert sorted(archive.namelist()) == ["decision.json", "decision.json.sig", "table.csv"]
    assert carol.get(base + f"requests/{rid}/released/table.csv").status_code == 403
    assert carol.get(base + f"requests/{rid}/released.zip").status_code == 403


def test_names_and_contents_are_escaped_and_csv_downloads_neutralised(service, tmp_path):
    base, airlock = service
    outputs = tmp_path / "workspaces/cardio-risk/shared/outputs"
    (outputs / "<img src=x onerror=alert(1)>.csv").write_text(
        'name,value\n<script>alert(1)</script>,=HYPERLINK("http://x")\n@SUM(A1),+1\n-2,ok\n')
    request = airlock.create("alice", "cardio-risk", "<b>bold</b>")
    airlock.add_file("alice", request, "outputs/<img src=x onerror=alert(1)>.csv", "G", "output",
                     context="c", controls="k")
    airlock.submit("alice", request)
    carol = browser(base, "carol")
    page = carol.get(base + f"reviews/{request}")
    assert "<script>alert(1)</script>" not in page.text and "&lt;script&gt;" in page.text
    assert "<img src=x" not in page.text and "<b>bold</b>" not in page.text
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert "script-src" not in page.headers["Content-Security-Policy"]
    download = carol.get(base + f"requests/{request}/files/{table_of(airlock, request)}/download")
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert download.text.splitlines() == [
        "name,value", "<script>alert(1)</script>,\"'=HYPERLINK(\"\"http://x\"\")\"", "'@SUM(A1),'+1", "'-2,ok"]


def test_notebooks_are_rendered_sanitised_in_a_sandbox(service, tmp_path):
    base, airlock = service
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Result\n<script>alert('md')</script>"),
        nbformat.v4.new_code_cell("1 + 1", outputs=[nbformat.v4.new_output(
            "display_data", data={"text/html": "<b>2</b><script>alert('out')</script>"})]),
    ])
    nbformat.write(notebook, tmp_path / "workspaces/cardio-risk/shared/outputs/analysis.ipynb")
    request = airlock.create("alice", "cardio-risk", "Notebook")
    airlock.add_file("alice", request, "outputs/analysis.ipynb", "G", "output", context="c", controls="k")
    airlock.submit("alice", request)
    carol = browser(base, "carol")
    file_id = table_of(airlock, request)
    frame = BeautifulSoup(carol.get(base + f"reviews/{request}").text, "html.parser").find(id=f"notebook-{file_id}")
    assert frame.has_attr("sandbox") and not frame["sandbox"]  # present and empty: every restriction
    view = carol.get(base + f"requests/{request}/files/{file_id}/view")
    assert view.headers["Content-Security-Policy"].startswith("sandbox")
    assert view.headers["X-Content-Type-Options"] == "nosniff"
    rendered = BeautifulSoup(view.text, "html.parser")
    assert "Result" in rendered.get_text()
    # The notebook's own scripts are shown as text, never as script elements (and the frame runs none).
    assert not [s for s in rendered.find_all("script") if "alert(" in s.get_text()]
    assert "&lt;script&gt;alert('out')" in view.text
    assert carol.get(base + f"requests/{request}/files/{file_id}/view").status_code == 200
    assert browser(base, "bob").get(base + f"requests/{request}/files/{file_id}/view").status_code == 404


def test_pages_speak_french_and_show_what_waits(service):
    base, airlock = service
    submitted_request(airlock)
    carol = browser(base, "carol")
    page = BeautifulSoup(carol.get(base, headers={"Accept-Language": "fr-FR,fr;q=0.9"}).text, "html.parser")
    assert page.find(id="waiting-count").get_text() == "1 en attente de vous"
    assert page.find(id="nav-queue").get_text() == "Demandes à examiner"


def test_anonymous_visitors_are_sent_to_sign_in(service):
    base, _ = service
    response = requests.get(base, allow_redirects=False, timeout=10)
    assert response.status_code == 302 and "/hub/api/oauth2/authorize" in response.headers["Location"]


def test_every_text_of_the_pages_has_its_french_translation():
    import re
    from pathlib import Path

    from tre_core.i18n import _messages
    from egress_review.app import VOCABULARY

    package = Path(__file__).resolve().parents[2] / "egress_review"
    texts = {m for t in (package / "templates").glob("*.html")
             for m in re.findall(r'_\("((?:[^"\\]|\\.)+)"', t.read_text())}
    texts |= {re.sub(r'"\s+"', "", m) for m in re.findall(r'self\.text\(\s*((?:"(?:[^"\\]|\\.)*"\s*)+)',
                                                           "".join(p.read_text() for p in package.glob("*.py")))}
    texts = {t.strip('"') for t in texts} | set(VOCABULARY)
    assert len(texts) > 80 and not texts - set(_messages("fr"))


def test_every_refusal_has_its_french_translation():
    import ast
    from pathlib import Path

    from tre_core.i18n import _messages

    templates = set()
    for source in (Path(__file__).resolve().parents[2] / "egress_review").glob("*.py"):
        tree = ast.parse(source.read_text())
        constants = {n.targets[0].id: n.value.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                     and isinstance(n.targets[0], ast.Name) and isinstance(n.value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and (getattr(node.func, "id", "") == "M" or (
                    getattr(node.func, "attr", "") == "of" and getattr(node.func.value, "id", "") == "Message")):
                first = node.args[0]
                if not isinstance(first, (ast.Constant, ast.Name)):
                    continue  # a catalogue refusal (accreditation): datasets.messages, checked by test_i18n
                templates.add(first.value if isinstance(first, ast.Constant) else constants[first.id])
    assert len(templates) > 40 and not templates - set(_messages("fr"))


def test_a_refusal_is_said_in_the_readers_language(service):
    base, airlock = service
    request = airlock.create("alice", "cardio-risk", "x")
    reply = requests.post(base + f"api/requests/{request}/files", timeout=10, json={
        "path": "/etc/passwd", "group": "G", "kind": "output"},
        headers={"Authorization": "token alice", "Accept-Language": "fr"})
    assert reply.status_code == 400
    assert reply.json()["error"] == ("« /etc/passwd » n’est pas un chemin dans le dossier du projet ; nommez un "
                                     "fichier relatif à /project, par exemple outputs/table.csv.")


# The pages that read content, over the same roles: the airlock's way out must be the release
# alone. Frozen files (reviewing) are for the request's independent checkers; released files for
# the project's members; anonymous visitors are sent to sign in.
PAGE_MATRIX: dict[str, tuple[Callable[[object, int], str], Callable, dict[str, int]]] = {
    "review page": (lambda a, r: f"reviews/{r}", submitted_request,
                    {"author": 403, "other member": 403, "other project": 404, "checker member": 403,
                     "checker": 200, "admin": 403, "anonymous": 302}),
    "frozen file": (lambda a, r: f"requests/{r}/files/{table_of(a, r)}/download", submitted_request,
                    {"author": 403, "other member": 403, "other project": 404, "checker member": 403,
                     "checker": 200, "admin": 403, "anonymous": 302}),
    "frozen file after release": (lambda a, r: f"requests/{r}/files/{table_of(a, r)}/download", released,
                                  {"author": 403, "other member": 403, "other project": 404,
                                   "checker member": 403, "checker": 403, "admin": 403, "anonymous": 302}),
    "released file": (lambda a, r: f"requests/{r}/released/table.csv", released,
                      {"author": 200, "other member": 200, "other project": 404, "checker member": 200,
                       "checker": 403, "admin": 403, "anonymous": 302}),
    "released zip": (lambda a, r: f"requests/{r}/released.zip", released,
                     {"author": 200, "other member": 200, "other project": 404, "checker member": 200,
                      "checker": 403, "admin": 403, "anonymous": 302}),
}


@pytest.mark.parametrize("page", list(PAGE_MATRIX))
def test_page_authorisation_matrix(service, page):
    base, airlock = service
    path, prepare, expected = PAGE_MATRIX[page]
    seen = {}
    for role in ROLES:
        request = prepare(airlock)
        seen[role] = call(base, role, "GET", path(airlock, request)).status_code
    assert seen == expected


def test_malformed_ids_are_a_400_that_says_what_to_do(service, catalogue_url):
    """A request id too large for the database's integer, a file id that is no number, a review
    field that names no file: each a 400 with a message (in the reader's language), nothing written."""
    base, airlock = service
    huge = str(2**63 * 10)
    for path in (f"api/requests/{huge}", f"api/requests/{huge}/released/table.csv"):
        reply = call(base, "author", "GET", path)
        assert reply.status_code == 400 and "is not the number of an export request" in reply.json()["error"]
    page = call(base, "author", "GET", f"requests/{huge}")
    assert page.status_code == 400 and "is not the number of an export request" in page.text
    french = requests.get(base + f"api/requests/{huge}", timeout=10,
                          headers={"Authorization": "token alice", "Accept-Language": "fr"})
    assert french.status_code == 400 and "n’est pas le numéro d’une demande de sortie" in french.json()["error"]
    alice, carol = browser(base, "alice"), browser(base, "carol")
    draft = draft_with_file(airlock)
    form = alice.get(base + f"requests/{draft}")
    before = head(catalogue_url)
    replace = alice.post(base + f"requests/{draft}/replace", data={"file": "abc", "_xsrf": xsrf_of(form)},
                         allow_redirects=False)
    assert replace.status_code == 400 and "“abc” is not the number of an export request" in replace.text
    assert head(catalogue_url) == before
    request = submitted_request(airlock)
    review = carol.get(base + f"reviews/{request}")
    before = head(catalogue_url)
    sent = carol.post(base + f"requests/{request}/reviews", allow_redirects=False, data={
        f"decision-{table_of(airlock, request)}": "approve", "decision-abc": "approve", "_xsrf": xsrf_of(review)})
    assert sent.status_code == 400 and "The form field “decision-abc” does not name a file" in sent.text
    # nothing written: the review page shown again with the message only reads its files (audited reads)
    with session_scope(catalogue_url) as session:
        since = session.scalars(select(AuditEvent.action).where(AuditEvent.seq > before)).all()
    assert set(since) <= {"egress.file.read"}
    assert airlock.get("carol", request).state == "submitted"


def test_the_review_page_asks_for_an_override_of_a_fail_and_shows_it_before_release(service, tmp_path):
    base, airlock = service
    (tmp_path / "workspaces/cardio-risk/shared/outputs/small.csv").write_text("region,readmissions\n11,3\n84,37\n")
    request = airlock.create("alice", "cardio-risk", "Small counts")
    small = airlock.add_file("alice", request, "outputs/small.csv", "T", "output", context="c", controls="k")
    airlock.submit("alice", request)
    carol, dave = browser(base, "carol"), browser(base, "dave")
    review = carol.get(base + f"reviews/{request}")
    assert BeautifulSoup(review.text, "html.parser").find(id=f"override-{small}") is not None
    refused = carol.post(base + f"requests/{request}/reviews", allow_redirects=False,
                         data={f"decision-{small}": "approve", "_xsrf": xsrf_of(review)})
    assert refused.status_code == 400 and "a Fail is final unless you override it" in refused.text
    for checker, reason in ((carol, "Three regions, not three people."), (dave, "Agreed: regions.")):
        page = checker.get(base + f"reviews/{request}")
        sent = checker.post(base + f"requests/{request}/reviews", allow_redirects=False, data={
            f"decision-{small}": "approve", f"override-{small}": reason, "_xsrf": xsrf_of(page)})
        assert sent.status_code == 303
    decision = BeautifulSoup(dave.get(base + f"reviews/{request}").text, "html.parser")
    shown = {li["data-reviewer"]: li.get_text() for li in decision.select("#overrides li.override")}
    assert "Three regions, not three people." in shown["carol"] and "Agreed: regions." in shown["dave"]
    assert decision.find(id="release-request") is not None


def test_jupyterlabs_panel_adds_a_file_to_a_new_request_then_to_the_same_one_and_shows_its_checks(service, tmp_path):
    base, airlock = service
    (tmp_path / "workspaces" / "cardio-risk" / "shared" / "outputs" / "small.csv").write_text(
        "region,patients\nNorth,3\nSouth,40\n")
    alice = browser(base, "alice")
    empty = alice.get(base + "panel", params={"project": "cardio-risk"})
    # framed by JupyterLab (same origin) and only there; still no script
    policy = empty.headers["Content-Security-Policy"]
    assert "frame-ancestors 'self'" in policy and "script-src" not in policy and "default-src 'none'" in policy
    assert BeautifulSoup(empty.text, "html.parser").find(id="panel-empty") is not None
    page = alice.get(base + "panel", params={"project": "cardio-risk", "add": "outputs/small.csv"})
    form = BeautifulSoup(page.text, "html.parser").find(id="panel-add-form")
    assert form.find(id="panel-path")["value"] == "outputs/small.csv"
    assert BeautifulSoup(page.text, "html.parser").find(id="panel-empty") is None  # the form, not "nothing open"
    # a crafted "added" (digits Python cannot read as a number) is ignored, not a 500
    assert alice.get(base + "panel", params={"project": "cardio-risk", "added": "²,x"}).status_code == 200
    assert [o["value"] for o in form.select("#panel-request option")] == [""]  # only "a new request"
    fields = {"project": "cardio-risk", "path": "outputs/small.csv", "request": "", "title": "Small counts",
              "group": "Table 2", "kind": "output", "context": "Patients by region", "controls": "none",
              "_xsrf": xsrf_of(page)}
    added = alice.post(base + "panel", data=fields)
    soup = BeautifulSoup(added.text, "html.parser")
    rid = airlock.list_requests("alice")[0].id
    assert added.url.startswith(base + "panel?") and soup.find(id="panel-added")["data-outcome"] == "fail"
    assert f"#{rid}" in soup.find(id="panel-added").get_text()
    request = soup.select_one(f'.panel-request[data-request="{rid}"]')
    small = request.select_one('.panel-file[data-path="outputs/small.csv"]')
    assert small.select_one(".check-outcome")["data-outcome"] == "fail"
    assert "patients" in small.select_one(".check-cells").get_text()  # the flagged cell, by its column
    # A second file goes to the same request, now offered first; a mistyped path keeps the form.
    page = alice.get(base + "panel", params={"project": "cardio-risk", "add": "outputs/tabel.csv"})
    form = BeautifulSoup(page.text, "html.parser").find(id="panel-add-form")
    assert form.select_one("#panel-request option[selected]")["value"] == str(rid)
    wrong = alice.post(base + "panel", data={**fields, "path": "outputs/tabel.csv", "request": str(rid),
                                             "_xsrf": xsrf_of(page)})
    soup = BeautifulSoup(wrong.text, "html.parser")
    assert wrong.status_code == 400 and soup.find(id="problem-path") is not None
    assert soup.find(id="panel-path")["value"] == "outputs/tabel.csv"
    assert soup.find(id="panel-context").get_text() == "Patients by region"
    alice.post(base + "panel", data={**fields, "path": "outputs/table.csv", "request": str(rid),
                                     "_xsrf": xsrf_of(page)})
    assert len(airlock.list_requests("alice")) == 1
    assert sorted(f.path for f in airlock.get("alice", rid).files) == ["outputs/small.csv", "outputs/table.csv"]
    # in French for a French browser
    french = alice.get(base + "panel", params={"project": "cardio-risk"}, headers={"Accept-Language": "fr-FR,fr"})
    assert "Demandes d’export" in BeautifulSoup(french.text, "html.parser").h1.get_text()


def test_jupyterlabs_panel_keeps_a_request_created_before_a_refused_file(service):
    base, airlock = service
    alice = browser(base, "alice")
    page = alice.get(base + "panel", params={"project": "cardio-risk", "add": "outputs/missing.csv"})
    refused = alice.post(base + "panel", data={
        "project": "cardio-risk", "path": "outputs/missing.csv", "request": "", "title": "T", "group": "G",
        "kind": "output", "_xsrf": xsrf_of(page)})
    soup = BeautifulSoup(refused.text, "html.parser")
    (created,) = airlock.list_requests("alice")
    # sending again adds to the request just made rather than making another
    assert soup.select_one("#panel-request option[selected]")["value"] == str(created.id)
    assert soup.find(id="problem-path") is not None
    no_title = alice.post(base + "panel", data={
        "project": "cardio-risk", "path": "outputs/table.csv", "request": "", "title": " ", "group": "G",
        "kind": "output", "_xsrf": xsrf_of(page)})
    assert no_title.status_code == 400 and BeautifulSoup(no_title.text, "html.parser").find(id="problem-title")
    assert len(airlock.list_requests("alice")) == 1


def test_jupyterlabs_panel_adds_files_chosen_together_and_keeps_those_after_a_refused_one(service, tmp_path):
    base, airlock = service
    outputs = tmp_path / "workspaces" / "cardio-risk" / "shared" / "outputs"
    for name in ("ages.csv", "sexes.csv", "regions.csv"):
        (outputs / name).write_text("group,patients\nA,30\nB,41\n")
    alice = browser(base, "alice")
    chosen = ["outputs/ages.csv", "outputs/missing.csv", "outputs/sexes.csv"]
    page = alice.get(base + "panel", params=[("project", "cardio-risk"), *(("add", p) for p in chosen)])
    form = BeautifulSoup(page.text, "html.parser").find(id="panel-add-form")
    assert [i["value"] for i in form.select('input[name="path"]')] == chosen
    assert form.find(id="panel-path")["value"] == chosen[0] and form.find(id="panel-path-3")["value"] == chosen[2]
    fields = {"project": "cardio-risk", "request": "", "title": "By group", "group": "Table 1", "kind": "output",
              "_xsrf": xsrf_of(page)}
    refused = alice.post(base + "panel", data={**fields, "path": chosen})
    soup = BeautifulSoup(refused.text, "html.parser")
    (created,) = airlock.list_requests("alice")
    # the file before the refused one is in, and said so; the refused one and the next stay in the form
    assert refused.status_code == 400 and soup.find(id="problem-path") is not None
    assert [f.path for f in airlock.get("alice", created.id).files] == ["outputs/ages.csv"]
    assert [d["data-path"] for d in soup.select(".panel-added")] == ["outputs/ages.csv"]
    assert [i["value"] for i in soup.select('#panel-add-form input[name="path"]')] == chosen[1:]
    assert soup.select_one("#panel-request option[selected]")["value"] == str(created.id)
    # corrected, sent again: the rest goes into the same request, each said with its checks
    added = alice.post(base + "panel", data={**fields, "request": str(created.id),
                                             "path": ["outputs/regions.csv", "outputs/sexes.csv"]})
    soup = BeautifulSoup(added.text, "html.parser")
    assert [(d["data-path"], d["data-outcome"]) for d in soup.select(".panel-added")] == [
        ("outputs/regions.csv", "pass"), ("outputs/sexes.csv", "pass")]
    assert soup.find(id="panel-add-form") is None
    assert [f.path for f in airlock.get("alice", created.id).files] == [
        "outputs/ages.csv", "outputs/regions.csv", "outputs/sexes.csv"]
    assert len(airlock.list_requests("alice")) == 1


def test_jupyterlabs_panel_says_where_a_refusal_comes_from(service, monkeypatch):
    base, airlock = service
    alice = browser(base, "alice")
    rid = draft_with_file(airlock)
    page = alice.get(base + "panel", params={"project": "cardio-risk", "add": "outputs/code.py"})
    airlock.submit("alice", rid)  # meanwhile, from another tab
    late = alice.post(base + "panel", data={"project": "cardio-risk", "path": "outputs/code.py",
                                           "request": str(rid), "group": "Code", "kind": "supporting",
                                           "_xsrf": xsrf_of(page)})
    assert late.status_code == 409
    assert BeautifulSoup(late.text, "html.parser").find(id="problem-request") is not None
    # a project that is not hers: the panel again, the refusal above the button, nothing created
    bob_project = alice.post(base + "panel", data={"project": "diabetes-outcomes", "path": "outputs/code.py",
                                                  "request": "", "title": "T", "group": "G", "kind": "output",
                                                  "_xsrf": xsrf_of(page)})
    soup = BeautifulSoup(bob_project.text, "html.parser")
    assert bob_project.status_code == 403 and soup.find(id="problem-form") is not None
    assert soup.find(id="panel-title")["value"] == "T"
    assert [r.id for r in airlock.list_requests("alice")] == [rid]
    # a file whose checks could not run at once says so, never "Pass"
    monkeypatch.setattr(type(airlock), "_check_now", lambda self, *args: None)
    fresh = airlock.create("alice", "cardio-risk", "Unchecked")
    page = alice.get(base + "panel", params={"project": "cardio-risk", "add": "outputs/table.csv"})
    added = alice.post(base + "panel", data={"project": "cardio-risk", "path": "outputs/table.csv",
                                            "request": str(fresh), "group": "T", "kind": "output",
                                            "_xsrf": xsrf_of(page)})
    note = BeautifulSoup(added.text, "html.parser").find(id="panel-added")
    assert note["data-outcome"] == "" and "Not checked yet" in note.get_text()
