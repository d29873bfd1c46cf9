"""A researcher's first day, with the real engine, hub and proxy: sign in, start a project
workspace, find exactly the project's data there, read it, share a file with a colleague, and be
refused a project that is not theirs."""

from __future__ import annotations

import json

import pytest
import requests
from bs4 import BeautifulSoup

from tests.integration.conftest import hub_xsrf

pytestmark = pytest.mark.integration


def run(container, *command: str) -> tuple[int, str]:
    result = container.exec_run(list(command), user="1000:100")
    return result.exit_code, result.output.decode(errors="replace")


def python_in(container, code: str) -> str:
    status, output = run(container, "python3", "-c", code)
    assert status == 0, output
    return output.strip()


@pytest.fixture(scope="module")
def alice(hub):
    return hub.login("alice")


@pytest.fixture(scope="module")
def alice_cardio(hub, alice):
    container = hub.start(alice, "alice", "cardio-risk")
    yield container
    hub.stop(alice, "alice", "cardio-risk")


def test_home_page_lists_only_the_users_projects_with_a_start_button(hub, alice):
    page = BeautifulSoup(alice.get(f"{hub.url}/hub/home").text, "html.parser")
    rows = {row["data-server-name"]: row for row in page.select("#tre-projects tr.home-server-row")}
    assert list(rows) == ["cardio-risk"]
    start = rows["cardio-risk"].select_one("a.start-server")
    assert start["href"].endswith("/hub/spawn/alice/cardio-risk")
    assert "claims" in rows["cardio-risk"].text and "hospital_stays" in rows["cardio-risk"].text


def test_home_page_speaks_french_to_a_french_browser(hub):
    bob = hub.login("bob", language="fr")
    page = BeautifulSoup(bob.get(f"{hub.url}/hub/home").text, "html.parser")
    assert page.h1.text.strip() == "Vos projets"
    assert page.select_one("a.start-server").text.strip() == "Démarrer"


def test_wrong_password_is_refused(hub):
    session = requests.Session()
    session.get(f"{hub.url}/hub/login")
    reply = session.post(f"{hub.url}/hub/login", data={
        "username": "alice", "password": "not-the-password", "_xsrf": hub_xsrf(session)})
    assert "/hub/login" in reply.url and "Invalid username or password" in reply.text


def test_workspace_holds_exactly_the_projects_datasets(hub, alice_cardio):
    assert run(alice_cardio, "ls", "/data")[1].split() == ["claims", "hospital_stays"]
    # each the project's own extract, never the dataset's folder
    sources = {m["Destination"]: m["Source"] for m in alice_cardio.attrs["Mounts"]}
    assert {t: s for t, s in sources.items() if t.startswith("/data")} == {
        "/data/claims": f"{hub.home}/extracts/cardio-risk/claims@2024.1",
        "/data/hospital_stays": f"{hub.home}/extracts/cardio-risk/hospital_stays@2024.1"}
    assert not any(s.startswith(f"{hub.home}/data") for s in sources.values())


def test_datasets_read_with_pandas(hub, alice_cardio):
    rows = python_in(alice_cardio, "import pandas as pd; print(len(pd.read_parquet('/data/claims')))")
    from tre_core.db import session_scope
    from datasets.models import Dataset
    from tre_core.settings import TRESettings

    with session_scope(TRESettings(home=hub.home).catalogue_url) as session:
        assert int(rows) == session.get(Dataset, "claims").row_count > 10_000
    one_year = python_in(alice_cardio, "import pandas as pd; "
                         "print(len(pd.read_parquet('/data/hospital_stays/year=2023/part-0.parquet')))")
    assert int(one_year) > 100


def test_data_is_read_only(alice_cardio):
    for target in ("/data/claims/new.parquet", "/data/claims/year=2022/month=01/part-0.parquet", "/data/new"):
        status, output = run(alice_cardio, "sh", "-c", f"echo x > {target}")
        assert status != 0 and "Read-only file system" in output, (target, output)
    status, output = run(alice_cardio, "rm", "/data/claims/year=2022/month=01/part-0.parquet")
    assert status != 0 and "Read-only file system" in output


def test_runs_as_the_non_root_researcher(alice_cardio):
    assert run(alice_cardio, "id", "-u")[1].strip() == "1000"
    assert alice_cardio.attrs["Config"]["User"] == "1000:100"


def test_project_folder_is_shared_with_the_projects_other_member(hub, alice_cardio):
    status, output = run(alice_cardio, "sh", "-c", "echo 'hello from alice' > /project/notes.txt")
    assert status == 0, output
    erin = hub.login("erin")
    erin_cardio = hub.start(erin, "erin", "cardio-risk")
    try:
        assert run(erin_cardio, "cat", "/project/notes.txt")[1] == "hello from alice\n"
        # homes are per user: erin does not see alice's
        homes = run(erin_cardio, "ls", "/home")[1].split()
        assert "erin" in homes and "alice" not in homes
    finally:
        hub.stop(erin, "erin", "cardio-risk")


def test_starting_a_project_one_is_not_a_member_of_is_refused_in_the_browser(hub, alice):
    reply = alice.get(f"{hub.url}/hub/spawn/alice/diabetes-outcomes")
    assert reply.status_code == 403, hub.log_tail(80)
    assert "You are not a member of project diabetes-outcomes" in reply.text
    assert "Bob Lefèvre" in reply.text
    assert not hub.client.containers.list(filters={"label": [f"tre.instance={hub.instance}", "tre.project=diabetes-outcomes", "tre.user=alice"]})


def test_refusal_in_french_for_a_french_browser(hub):
    erin = hub.login("erin", language="fr")
    reply = erin.get(f"{hub.url}/hub/spawn/erin/diabetes-outcomes")
    assert reply.status_code == 403
    assert "Vous n’êtes pas membre du projet diabetes-outcomes" in reply.text


def api_headers(hub, session, user) -> dict[str, str]:
    """A token of the signed-in user's, made on the hub's token page as a person would."""
    token = session.post(
        f"{hub.url}/hub/api/users/{user}/tokens",
        headers={"X-XSRFToken": hub_xsrf(session), "Referer": f"{hub.url}/hub/token"},
        json={"note": "integration test", "expires_in": 600},
    ).json()["token"]
    return {"Authorization": f"token {token}"}


def test_refusal_through_the_rest_api(hub, alice):
    api = api_headers(hub, alice, "alice")
    reply = requests.post(f"{hub.url}/hub/api/users/alice/servers/diabetes-outcomes", headers=api)
    assert reply.status_code == 403
    assert "not a member of project diabetes-outcomes" in reply.json()["message"]
    reply = requests.post(f"{hub.url}/hub/api/users/alice/servers/no-such-project", headers=api)
    assert reply.status_code == 403 and "There is no project called" in reply.json()["message"]


def test_an_image_cannot_be_chosen_at_start(hub):
    bob = hub.login("bob")
    reply = requests.post(f"{hub.url}/hub/api/users/bob/servers/diabetes-outcomes",
                          headers=api_headers(hub, bob, "bob"), data=json.dumps({"image": "debian:bookworm-slim"}))
    assert reply.status_code == 403 and "pinned for its project" in reply.json()["message"]


def test_bob_sees_beneficiaries_and_claims_only(hub):
    bob = hub.login("bob")
    container = hub.start(bob, "bob", "diabetes-outcomes")
    try:
        assert run(container, "ls", "/data")[1].split() == ["beneficiaries", "claims"]
        # not cardio-risk's notes: its own outputs, the link to /data and the starter notebook
        assert run(container, "ls", "/project")[1].split() == ["data", "outputs", "starter.ipynb"]
        networks = set(container.attrs["NetworkSettings"]["Networks"])
        assert networks == {f"tre-{hub.instance}-diabetes-outcomes"}
    finally:
        hub.stop(bob, "bob", "diabetes-outcomes")
    # the project's network goes with its last workspace
    assert not hub.client.networks.list(names=[f"tre-{hub.instance}-diabetes-outcomes"])


def test_downloads_and_uploads_are_off_in_jupyterlab(hub, alice, alice_cardio):
    base = f"{hub.url}/user/alice/cardio-risk"
    run(alice_cardio, "sh", "-c", "echo 'n,count' > /project/outputs/table.csv")
    download = alice.get(f"{base}/files/outputs/table.csv")
    assert download.status_code == 403 and "Downloads are turned off" in download.text
    xsrf = alice.cookies.get("_xsrf", path="/user/alice/cardio-risk/")
    headers = {"X-XSRFToken": xsrf} if xsrf else {}
    upload = alice.put(f"{base}/api/contents/uploaded.bin", headers=headers,
                       json={"type": "file", "format": "base64", "content": "aGVsbG8="})
    assert upload.status_code == 403 and "Uploads are turned off" in upload.json()["message"]
    saved = alice.put(f"{base}/api/contents/notes.md", headers=headers,
                      json={"type": "file", "format": "text", "content": "# analysis plan\n"})
    assert saved.status_code in (200, 201), saved.text
    page = alice.get(f"{base}/lab")
    config = json.loads(BeautifulSoup(page.text, "html.parser").find(id="jupyter-config-data").string)
    for plugin in ("@jupyterlab/filebrowser-extension:download", "@jupyterlab/filebrowser-extension:open-browser-tab",
                   "@jupyterlab/docmanager-extension:download"):
        assert plugin in config["disabledExtensions"], plugin
        assert plugin in config["lockedExtensions"], plugin


def test_jupyterlab_speaks_the_browsers_language(hub):
    erin = hub.login("erin", language="fr")
    container = hub.start(erin, "erin", "cardio-risk")
    try:
        settings = "/home/erin/.jupyter/lab/user-settings/@jupyterlab/translation-extension/plugin.jupyterlab-settings"
        assert '"locale": "fr_FR"' in run(container, "cat", settings)[1]
        packs = erin.get(f"{hub.url}/user/erin/cardio-risk/lab/api/translations/fr_FR").json()
        assert packs["data"], "the French language pack is not installed"
    finally:
        hub.stop(erin, "erin", "cardio-risk")


def test_a_platform_admin_sees_the_hub_but_cannot_enter_a_workspace_or_act_as_its_owner(hub, alice_cardio):
    admin = hub.login("admin")
    assert admin.get(f"{hub.url}/hub/admin").status_code == 200
    users = admin.get(f"{hub.url}/hub/api/users/alice", headers={"X-XSRFToken": hub_xsrf(admin),
                                                                   "Referer": f"{hub.url}/hub/admin"})
    assert users.status_code == 200 and "cardio-risk" in users.json()["servers"]
    # alice's running JupyterLab, and so her project's data, stay out of the admin's reach
    contents = admin.get(f"{hub.url}/user/alice/cardio-risk/api/contents", allow_redirects=True)
    assert contents.status_code == 403 and "jupyter-config-data" not in contents.text
    token = admin.post(f"{hub.url}/hub/api/users/alice/tokens", json={"note": "as alice"},
                       headers={"X-XSRFToken": hub_xsrf(admin), "Referer": f"{hub.url}/hub/admin"})
    assert token.status_code == 403, token.text
