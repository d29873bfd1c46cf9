"""The whole sign-on through an OpenID provider, in real Chromium: a real provider (the certified
`oidc-provider` npm package, pinned in package-lock.json, run by the test on loopback with test
accounts), a hub of its own configured by the TRE_OIDC_* settings, and the people of the demo
catalogue.

- alice goes to the hub, is sent to the provider, types her password on the provider's page, comes
  back signed in, sees her project and starts her cardio-risk workspace (JupyterLab loads); her
  tokens are stored encrypted; logging out ends the provider's session too, so the next visit asks
  for her password again;
- mallory, whom the provider knows but the catalogue does not, gets a page saying whom to ask, in
  her browser's language, and no session;
- cancelling at the provider brings a page saying so, in the browser's language;
- carol, known to the catalogue but in no project, lands on the home page that says so;
- every sign-in, refusal and sign-out is an audit row;
- a sign-in the provider reports without the second factor (its acr is not one of
  TRE_OIDC_ACR_VALUES) is refused with a page saying so, in the browser's language, and audited;
- each person is bound to the provider account (sub) of their first sign-in: another account of the
  provider with the same username is refused, in the browser's language, and audited;
- a provider gone when the hub asks it for the tokens gives a page saying so, not a traceback;
- a hub whose provider cannot be reached, or whose settings lack a client id, does not start and
  says why.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.integration.conftest import REPO, VENV_BIN, Hub, free_port
from tests.integration.openid_provider import OpenIDProvider

pytestmark = pytest.mark.integration

PAGE_MS = 30_000
WORKSPACE_MS = 240_000
PROVIDER_NAME = "Test institution"
PASSWORDS = {"alice": "alice-pass", "carol": "carol-pass", "mallory": "mallory-pass",
             "alice-again": "alice-again-pass"}  # tests/oidc_provider


@pytest.fixture(scope="module")
def oidc_hub(docker_client) -> Iterator[tuple[Hub, OpenIDProvider]]:
    """A hub of its own whose people sign in through the test's provider (the session's hub keeps
    the demo login)."""
    port = free_port()
    hub = Hub(docker_client, settings={
        "TRE_OIDC_ISSUER": f"http://127.0.0.1:{port}", "TRE_OIDC_CLIENT_ID": "tre-hub",
        "TRE_OIDC_LOGIN_SERVICE": PROVIDER_NAME, "TRE_OIDC_ACR_VALUES": "urn:tre:mfa",
    })
    provider = None
    try:
        secret_file = hub.home / "secrets" / "oidc-client-secret"
        secret_file.write_text("a-client-secret-for-the-test\n")
        hub.env["TRE_OIDC_CLIENT_SECRET_FILE"] = str(secret_file)
        hub.env["TRE_OIDC_CALLBACK_URL"] = f"{hub.url}/hub/oauth_callback"
        provider = OpenIDProvider(port, hub.url, "a-client-secret-for-the-test")
        hub.start_process()
        yield hub, provider
    finally:
        hub.close()
        if provider:
            provider.close()


def audit_rows(hub: Hub) -> list[dict]:
    return [json.loads(line) for line in hub.tre("audit", "export").splitlines()]


def sign_in_rows_since(hub: Hub, before: int) -> list[dict]:
    """The sign-in rows recorded after the first ``before`` rows (the hub's services record their
    own work, extracts queued or built say, in the same log meanwhile)."""
    return [row for row in audit_rows(hub)[before:] if row["action"].startswith("login")]


SIGN_IN_WITH = {"en": f"Sign in with {PROVIDER_NAME}", "fr": f"Se connecter avec {PROVIDER_NAME}"}


def sign_in_at_provider(page: Page, hub: Hub, username: str) -> None:
    """From the hub's login page, in the browser's language, to the provider's, where the person
    types their password."""
    page.goto(f"{hub.url}/hub/")
    expect(page).to_have_url(re.compile(r"/hub/login"), timeout=PAGE_MS)
    language = page.locator("html").get_attribute("lang")
    page.get_by_role("button", name=SIGN_IN_WITH[language]).click()
    expect(page).to_have_url(re.compile(r"^http://127\.0\.0\.1:\d+/interaction/"), timeout=PAGE_MS)
    assert not page.url.startswith(hub.url)
    page.locator("#login").fill(username)
    page.locator("#password").fill(PASSWORDS[username])
    page.locator("#submit").click()


def test_alice_signs_in_at_her_provider_starts_her_workspace_and_logout_ends_the_provider_session(oidc_hub, open_page):
    hub, provider = oidc_hub
    page = open_page("en-GB")
    sign_in_at_provider(page, hub, "alice")
    expect(page).to_have_url(re.compile(r"/hub/home$"), timeout=PAGE_MS)
    expect(page.locator("#demo-login-notice")).to_have_count(0)
    rows = page.locator("#tre-projects tr.home-server-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-server-name", "cardio-risk")

    login = [row for row in audit_rows(hub) if row["actor"] == "alice" and row["action"] == "login"]
    assert len(login) == 1 and login[0]["details"]["method"] == "oidc" and login[0]["details"]["subject"] == "alice"

    # her provider tokens are kept, encrypted with the installation's key
    assert (hub.home / "secrets" / "jupyterhub_crypt_key").exists()
    with sqlite3.connect(hub.home / "jupyterhub.sqlite") as db:
        (state,) = db.execute("SELECT encrypted_auth_state FROM users WHERE name = 'alice'").fetchone()
    assert state and b"id_token" not in state and b"access_token" not in state

    page.locator("#start-cardio-risk").click()
    expect(page).to_have_url(re.compile(r"/user/alice/cardio-risk/lab"), timeout=WORKSPACE_MS)
    expect(page.locator(".jp-Launcher")).to_be_visible(timeout=WORKSPACE_MS)
    assert hub.container("alice", "cardio-risk").status == "running"

    # While her provider session lasts, going through the provider again asks nothing...
    page.goto(f"{hub.url}/hub/oauth_login")
    expect(page).to_have_url(re.compile(r"/hub/home$"), timeout=PAGE_MS)
    # ...logging out of the hub ends it at the provider too and brings her back to the hub's login
    page.goto(f"{hub.url}/hub/logout")
    expect(page).to_have_url(re.compile(r"/hub/login"), timeout=PAGE_MS)
    assert "alice" in [row["actor"] for row in audit_rows(hub) if row["action"] == "logout"]
    page.goto(f"{hub.url}/hub/home")
    expect(page).to_have_url(re.compile(r"/hub/login"), timeout=PAGE_MS)  # the hub's session is gone
    page.get_by_role("button", name=f"Sign in with {PROVIDER_NAME}").click()
    expect(page.locator("#password")).to_be_visible(timeout=PAGE_MS)  # and the provider asks again


@pytest.mark.parametrize(("locale", "refusal"), [
    ("en-GB", "this TRE does not know you"),
    ("fr-FR", "ce TRE ne vous connaît pas"),
])
def test_a_person_unknown_to_the_catalogue_is_refused_with_whom_to_ask(oidc_hub, open_page, locale, refusal):
    hub, _ = oidc_hub
    before = len(audit_rows(hub))
    page = open_page(locale)
    sign_in_at_provider(page, hub, "mallory")
    expect(page.locator("body")).to_contain_text(refusal, timeout=PAGE_MS)
    expect(page.locator("body")).to_contain_text("mallory")
    expect(page.locator("body")).not_to_contain_text("Traceback")
    assert "/hub/oauth_callback" in page.url
    # no session: the hub still sends her to its login page
    page.goto(f"{hub.url}/hub/home")
    expect(page).to_have_url(re.compile(r"/hub/login"), timeout=PAGE_MS)
    new = sign_in_rows_since(hub, before)
    assert [(row["actor"], row["action"], row["details"]["reason"]) for row in new] == [
        ("mallory", "login.failed", "unknown-person")]


def test_cancelling_at_the_provider_gives_a_page_saying_so(oidc_hub, open_page):
    hub, _ = oidc_hub
    before = len(audit_rows(hub))
    page = open_page("fr-FR")
    page.goto(f"{hub.url}/hub/")
    page.get_by_role("button", name=SIGN_IN_WITH["fr"]).click()
    page.locator("#cancel").click()
    expect(page.locator("body")).to_contain_text("Le fournisseur d’identité ne vous a pas connecté "
                                                 "(End-User aborted interaction)", timeout=PAGE_MS)
    expect(page.locator("body")).not_to_contain_text("Traceback")
    new = sign_in_rows_since(hub, before)
    assert [(row["action"], row["details"]["error"]) for row in new] == [("login.failed", "access_denied")]


def test_a_known_person_with_no_project_lands_on_the_page_of_her_role(oidc_hub, open_page):
    hub, _ = oidc_hub
    page = open_page("fr-FR")
    sign_in_at_provider(page, hub, "carol")
    # an output checker with no project: the review queue; her home page says she has no project
    expect(page).to_have_url(re.compile(r"/services/egress/queue$"), timeout=PAGE_MS)
    page.goto(f"{hub.url}/hub/home")
    expect(page.locator("#no-projects")).to_be_visible()
    expect(page.locator("#tre-projects")).to_have_count(0)
    # her first sign-in binds her to the provider's account (its sub)
    assert [(row["action"], row["details"].get("subject")) for row in audit_rows(hub) if row["actor"] == "carol"] == [
        ("identity.bound", "carol"), ("login", "carol")]


def test_a_provider_gone_at_sign_in_gives_a_page_saying_so(oidc_hub, open_page):
    """The provider answers the browser, then is gone when the hub exchanges the code for tokens."""
    hub, provider = oidc_hub
    before = len(audit_rows(hub))
    page = open_page("en-GB")
    provider.crash_after_next_code()
    try:
        with page.expect_response(re.compile(r"/hub/oauth_callback")) as callback:
            sign_in_at_provider(page, hub, "alice")
        assert callback.value.status == 502
        assert provider.process.wait(timeout=30) == 3  # it did vanish, as asked
        expect(page.locator("body")).to_contain_text("The identity provider cannot be reached", timeout=PAGE_MS)
        expect(page.locator("body")).not_to_contain_text("Traceback")
        new = sign_in_rows_since(hub, before)
        assert [(row["action"], row["details"]["reason"]) for row in new] == [("login.failed", "provider-unreachable")]
    finally:
        if provider.process.poll() is not None:
            provider.start()  # the next tests need it (the hub reads its discovery document at start)


@pytest.mark.parametrize(("locale", "refusal"), [
    ("en-GB", "signed you in at a level of assurance this TRE does not accept (it reported “urn:tre:pwd”"),
    ("fr-FR", "à un niveau d’assurance que ce TRE n’accepte pas (il a indiqué « urn:tre:pwd »"),
])
def test_a_sign_in_without_the_second_factor_is_refused_and_with_it_accepted(oidc_hub, open_page, locale, refusal):
    """The hub asks for urn:tre:mfa (acr_values); the provider answers urn:tre:pwd (password only)."""
    hub, provider = oidc_hub
    before = len(audit_rows(hub))
    provider.report_acr("urn:tre:pwd")
    try:
        page = open_page(locale)
        sign_in_at_provider(page, hub, "alice")
        expect(page.locator("body")).to_contain_text(refusal, timeout=PAGE_MS)
        expect(page.locator("body")).not_to_contain_text("Traceback")
        page.goto(f"{hub.url}/hub/home")
        expect(page).to_have_url(re.compile(r"/hub/login"), timeout=PAGE_MS)  # no session
    finally:
        provider.report_acr("urn:tre:mfa")
    new = sign_in_rows_since(hub, before)
    assert [(row["actor"], row["action"], row["details"]["reason"], row["details"]["acr"]) for row in new] == [
        ("alice", "login.failed", "assurance-too-low", "urn:tre:pwd")]
    # the control: the same account, with its second factor, is signed in
    page = open_page(locale)
    sign_in_at_provider(page, hub, "alice")
    expect(page).to_have_url(re.compile(r"/hub/home$"), timeout=PAGE_MS)


@pytest.mark.parametrize(("locale", "refusal"), [
    ("en-GB", "through another account than the one this name is bound to"),
    ("fr-FR", "avec un autre compte que celui auquel ce nom est lié"),
])
def test_another_provider_account_with_the_same_username_is_refused(oidc_hub, open_page, locale, refusal):
    hub, _ = oidc_hub
    page = open_page("en-GB")
    sign_in_at_provider(page, hub, "alice")  # binds alice to the sub "alice" if no test did before
    expect(page).to_have_url(re.compile(r"/hub/home$"), timeout=PAGE_MS)
    bound = [row for row in audit_rows(hub) if row["action"] == "identity.bound" and row["actor"] == "alice"]
    assert [row["details"]["subject"] for row in bound] == ["alice"]

    before = len(audit_rows(hub))
    page = open_page(locale)
    sign_in_at_provider(page, hub, "alice-again")  # the provider's preferred_username: alice; sub: another
    expect(page.locator("body")).to_contain_text(refusal, timeout=PAGE_MS)
    expect(page.locator("body")).not_to_contain_text("Traceback")
    page.goto(f"{hub.url}/hub/home")
    expect(page).to_have_url(re.compile(r"/hub/login"), timeout=PAGE_MS)
    new = sign_in_rows_since(hub, before)
    assert [(row["actor"], row["action"], row["details"]["reason"], row["details"]["subject"]) for row in new] == [
        ("alice", "login.failed", "subject-mismatch", "f3c1-alice-2")]


@pytest.mark.parametrize(("change", "named"), [
    ({"TRE_OIDC_ISSUER": f"http://127.0.0.1:{free_port()}"}, "TRE_OIDC_ISSUER cannot be reached"),
    ({"TRE_OIDC_CLIENT_ID": ""}, "Set TRE_OIDC_CLIENT_ID"),
])
def test_a_hub_with_a_wrong_setting_does_not_start_and_names_it(oidc_hub, change, named):
    hub, _ = oidc_hub
    env = {**hub.env, **change}
    # the hub's own command and config file: it must stop while reading its configuration
    process = subprocess.Popen([VENV_BIN / "jupyterhub", "-f", hub.config], env=env, cwd=hub.home,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise AssertionError(f"the hub started although {change} is wrong")
    assert process.returncode != 0
    assert named in output, output
    assert "Traceback" not in output, output
