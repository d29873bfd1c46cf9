"""The hub's own pages as a web probe finds them, on a real hub: no version banners, SameSite
cookies (Secure and HSTS when served over TLS), nosniff and a CSP, and sign-in attempts throttled
per account and per address with a message that says when to retry; each beside its control."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.integration.conftest import Hub, hub_xsrf, running_hub


def _hub(docker_client, **settings: str) -> Iterator[Hub]:
    with running_hub(docker_client, settings=settings) as hub:
        yield hub


@pytest.fixture(scope="module")
def tls_hub(docker_client) -> Iterator[Hub]:
    """Behind a TLS proxy (the Ansible deployment sets TRE_PUBLIC_TLS); reached here over HTTP."""
    yield from _hub(docker_client, TRE_PUBLIC_TLS="true")


@pytest.fixture(scope="module")
def plain_hub(docker_client) -> Iterator[Hub]:
    """Its own hub: the throttling tests lock accounts and addresses that others sign in with."""
    yield from _hub(docker_client)


def cookies_set(reply: requests.Response) -> dict[str, str]:
    """Each cookie set by the reply, by name, with its attributes as sent."""
    found = {}
    for header in reply.raw.headers.getlist("Set-Cookie"):
        found[header.split("=", 1)[0]] = header
    return found


def sign_in(hub: Hub, username: str, password: str, *, address: str, language: str = "en") -> requests.Response:
    """The login form as a browser posts it, from ``address`` (the X-Real-IP a TLS proxy sets)."""
    headers = {"X-Real-IP": address, "Accept-Language": language, "Sec-Fetch-Mode": "navigate"}
    form = requests.get(f"{hub.url}/hub/login", headers=headers)
    form.raise_for_status()
    xsrf = form.cookies["_xsrf"]  # sent back by hand: a Secure cookie is not sent over the test's HTTP
    reply = requests.post(f"{hub.url}/hub/login", data={"username": username, "password": password, "_xsrf": xsrf},
                          headers={**headers, "Cookie": f"_xsrf={xsrf}"}, allow_redirects=False)
    reply.encoding = "utf-8"  # the hub's pages say so in a <meta> tag only
    return reply


def test_no_version_banners_for_strangers_and_the_version_for_the_signed_in(plain_hub):
    for path in ("/hub/login", "/hub/api/", "/hub/api", "/hub/health", "/hub/nowhere"):
        reply = requests.get(plain_hub.url + path, allow_redirects=False)
        assert "X-JupyterHub-Version" not in reply.headers, path
        assert "Server" not in reply.headers, (path, reply.headers.get("Server"))
    assert requests.get(plain_hub.url + "/hub/api/").json() == {}
    # control: the hub does know its version, and tells it to whoever signed in or shows a token
    session = plain_hub.login("alice")
    assert session.get(plain_hub.url + "/hub/api/").json()["version"]
    token = session.post(f"{plain_hub.url}/hub/api/users/alice/tokens", json={"expires_in": 600},
                         headers={"X-XSRFToken": hub_xsrf(session)}).json()["token"]
    reply = requests.get(f"{plain_hub.url}/hub/api/user", headers={"Authorization": f"token {token}"})
    assert reply.ok and reply.headers["X-JupyterHub-Version"]
    refused = requests.get(f"{plain_hub.url}/hub/api/user", headers={"Authorization": "token not-a-token"})
    assert refused.status_code == 403 and "X-JupyterHub-Version" not in refused.headers


def test_hub_pages_send_nosniff_and_a_csp(plain_hub):
    session = plain_hub.login("alice")
    for reply in (requests.get(plain_hub.url + "/hub/login"), session.get(plain_hub.url + "/hub/home")):
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
        csp = reply.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp


def test_over_tls_cookies_are_secure_and_samesite_and_hsts_is_sent(tls_hub):
    reply = sign_in(tls_hub, "alice", tls_hub.password, address="10.1.0.1")
    assert reply.status_code == 302, reply.text[-500:]
    assert reply.headers["Strict-Transport-Security"].startswith("max-age=")
    cookies = cookies_set(reply)
    assert "jupyterhub-hub-login" in cookies, cookies
    for name, header in cookies.items():
        assert "Secure" in header and "SameSite=Lax" in header, header
    xsrf = cookies_set(requests.get(f"{tls_hub.url}/hub/login"))["_xsrf"]
    assert "Secure" in xsrf and "SameSite=Lax" in xsrf


def test_over_plain_http_cookies_are_samesite_without_secure_and_no_hsts(plain_hub):
    """The control: the flag, not the test's HTTP, makes them Secure."""
    reply = sign_in(plain_hub, "alice", plain_hub.password, address="10.2.0.1")
    assert reply.status_code == 302
    assert "Strict-Transport-Security" not in reply.headers
    login_cookie = cookies_set(reply)["jupyterhub-hub-login"]
    assert "SameSite=Lax" in login_cookie and "Secure" not in login_cookie


def test_an_account_is_throttled_after_five_failures_with_when_to_retry(plain_hub):
    for n in range(5):
        reply = sign_in(plain_hub, "bob", "wrong", address=f"10.3.0.{n}")
        assert reply.status_code == 403, reply.status_code
    refused = sign_in(plain_hub, "bob", plain_hub.password, address="10.3.0.9")  # even the right password
    assert refused.status_code == 429 and "Too many failed sign-in attempts for this account" in refused.text
    assert "Try again in 5 minute(s)" in refused.text
    french = sign_in(plain_hub, "bob", plain_hub.password, address="10.3.0.9", language="fr")
    assert french.status_code == 429 and "Réessayez dans" in french.text
    assert sign_in(plain_hub, "carol", plain_hub.password, address="10.3.0.9").status_code == 302  # control


def test_an_address_is_throttled_after_twenty_failures(plain_hub):
    for n in range(20):
        assert sign_in(plain_hub, f"guess{n}", "wrong", address="10.4.0.1").status_code == 403
    refused = sign_in(plain_hub, "dave", plain_hub.password, address="10.4.0.1")
    assert refused.status_code == 429 and "from your network address" in refused.text
    assert sign_in(plain_hub, "dave", plain_hub.password, address="10.4.0.2").status_code == 302  # control
