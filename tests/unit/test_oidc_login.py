"""Sign-on settings → authenticator configuration, the provider's discovery document read from a
real HTTP server on loopback, an unreachable provider (at hub start and at sign-in), and the
sign-out address. Each wrong setting must be refused with a message naming it."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urlparse

import pytest
from oauthenticator.oauth2 import _serialize_state

from tre_core.db import session_scope
from datasets.schema import upgrade
from datasets.models import AuditEvent
from hub.auth.oidc_login import (
    OIDCSettingsError,
    ProviderEndpoints,
    SignOnRefused,
    TREOIDCAuthenticator,
    authenticator_config,
    crypt_key,
    discover,
    end_session_redirect,
    provider_endpoints,
)
from tre_core.settings import TRESettings

ENDPOINTS = ProviderEndpoints("https://idp.example.org/auth", "https://idp.example.org/token",
                              "https://idp.example.org/userinfo", "https://idp.example.org/logout")


def closed_port() -> int:
    """A loopback port nobody listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_settings(tmp_path: Path, **values) -> TRESettings:
    base = dict(home=tmp_path, oidc_issuer="https://idp.example.org", oidc_client_id="tre-hub",
                oidc_client_secret="s3cret", oidc_callback_url="https://tre.example.org/hub/oauth_callback")
    base.update(values)
    return TRESettings(**base)


def test_a_complete_setting_gives_the_authenticator_its_traits(tmp_path):
    config = authenticator_config(make_settings(tmp_path, oidc_acr_values="mfa"), ENDPOINTS)
    assert config["authorize_url"] == ENDPOINTS.authorize_url
    assert config["token_url"] == ENDPOINTS.token_url
    assert config["userdata_url"] == ENDPOINTS.userinfo_url
    assert config["end_session_url"] == ENDPOINTS.end_session_url
    assert config["client_secret"] == "s3cret"
    assert config["scope"] == ["openid", "profile", "email"]
    assert config["username_claim"] == "preferred_username"
    assert config["extra_authorize_params"] == {"acr_values": "mfa"}
    assert config["enable_pkce"] is True and config["enable_auth_state"] is True
    assert config["post_logout_redirect_url"] == "https://tre.example.org/hub/login"
    # the traits exist on the authenticator (a typo would be silently ignored by traitlets)
    authenticator = TREOIDCAuthenticator(**config)
    assert authenticator.enable_pkce and authenticator.enable_auth_state
    assert authenticator.extra_authorize_params == {"acr_values": "mfa"}


def test_claims_can_come_from_the_id_token_instead_of_userinfo(tmp_path):
    config = authenticator_config(make_settings(tmp_path, oidc_userdata_from_id_token=True), ENDPOINTS)
    authenticator = TREOIDCAuthenticator(**config)
    assert authenticator.userdata_from_id_token and authenticator.userdata_url == ""
    explicit = make_settings(tmp_path, oidc_issuer=None, oidc_userdata_from_id_token=True,
                             oidc_authorize_url="https://idp/a", oidc_token_url="https://idp/t")
    assert provider_endpoints(explicit).token_url == "https://idp/t"  # no userinfo endpoint needed


def test_the_secret_file_is_read_and_a_missing_one_is_named(tmp_path):
    secret = tmp_path / "client-secret"
    secret.write_text("from-file\n")
    config = authenticator_config(make_settings(tmp_path, oidc_client_secret=None, oidc_client_secret_file=secret),
                                  ENDPOINTS)
    assert config["client_secret"] == "from-file"
    with pytest.raises(OIDCSettingsError, match="TRE_OIDC_CLIENT_SECRET_FILE=.*cannot be read"):
        authenticator_config(make_settings(tmp_path, oidc_client_secret_file=tmp_path / "nope"), ENDPOINTS)


@pytest.mark.parametrize(("values", "named"), [
    ({"oidc_client_id": None}, "TRE_OIDC_CLIENT_ID"),
    ({"oidc_client_secret": None}, "TRE_OIDC_CLIENT_SECRET_FILE"),
    ({"oidc_callback_url": None}, "TRE_OIDC_CALLBACK_URL"),
    ({"oidc_callback_url": "tre.example.org/hub/oauth_callback"}, "TRE_OIDC_CALLBACK_URL"),
    ({"oidc_callback_url": "https://tre.example.org/callback"}, "TRE_OIDC_CALLBACK_URL"),
    ({"oidc_scopes": "profile email"}, "TRE_OIDC_SCOPES"),
    ({"oidc_username_claim": " "}, "TRE_OIDC_USERNAME_CLAIM"),
])
def test_a_missing_or_wrong_setting_is_named(tmp_path, values, named):
    with pytest.raises(OIDCSettingsError, match=named):
        authenticator_config(make_settings(tmp_path, **values), ENDPOINTS)


def test_explicit_endpoints_need_all_three_and_skip_discovery(tmp_path):
    def no_discovery(issuer):
        raise AssertionError("discovery must not run when the endpoints are given")

    given = make_settings(tmp_path, oidc_issuer=None, oidc_authorize_url="https://idp/a",
                          oidc_token_url="https://idp/t", oidc_userinfo_url="https://idp/u")
    assert provider_endpoints(given, fetch=no_discovery) == ProviderEndpoints("https://idp/a", "https://idp/t", "https://idp/u")
    with pytest.raises(OIDCSettingsError, match="TRE_OIDC_USERINFO_URL"):
        provider_endpoints(make_settings(tmp_path, oidc_authorize_url="https://idp/a", oidc_token_url="https://idp/t"),
                           fetch=no_discovery)
    with pytest.raises(OIDCSettingsError, match="TRE_OIDC_TOKEN_URL='ftp://idp/t'"):
        provider_endpoints(make_settings(tmp_path, oidc_authorize_url="https://idp/a", oidc_token_url="ftp://idp/t",
                                         oidc_userinfo_url="https://idp/u"), fetch=no_discovery)


def provider_document(issuer: str) -> dict:
    return {"issuer": issuer, "authorization_endpoint": f"{issuer}/auth", "token_endpoint": f"{issuer}/token",
            "userinfo_endpoint": f"{issuer}/me", "end_session_endpoint": f"{issuer}/logout"}


class DiscoveryServer:
    """A real HTTP server on loopback serving one discovery document (or an error status)."""

    paths: list[str]
    server: ThreadingHTTPServer

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _serve_on(port: int, document: dict, status: int = 200) -> DiscoveryServer:
    """A discovery server on a chosen port, so that the document can name its own issuer."""
    server = DiscoveryServer()
    outer = server
    server.paths = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            outer.paths.append(self.path)
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.server.serve_forever, daemon=True).start()
    return server


def test_discovery_reads_the_endpoints_from_the_providers_document():
    port = closed_port()
    issuer = f"http://127.0.0.1:{port}/realms/tre"
    server = _serve_on(port, provider_document(issuer))
    try:
        found = discover(issuer + "/")  # a trailing slash is tolerated
    finally:
        server.close()
    assert found == ProviderEndpoints(f"{issuer}/auth", f"{issuer}/token", f"{issuer}/me", f"{issuer}/logout")
    assert server.paths == ["/realms/tre/.well-known/openid-configuration"]


def test_discovery_refuses_another_issuer_a_404_and_a_missing_endpoint():
    port = closed_port()
    issuer = f"http://127.0.0.1:{port}/realms/tre"
    for document, status, expected in [
        ({**provider_document(issuer), "issuer": "https://elsewhere.example.org"}, 200, "exact issuer"),
        (provider_document(issuer), 404, "HTTP 404: TRE_OIDC_ISSUER is probably wrong"),
        ({k: v for k, v in provider_document(issuer).items() if k != "token_endpoint"}, 200, "token_endpoint"),
    ]:
        server = _serve_on(port, document, status)
        try:
            with pytest.raises(OIDCSettingsError, match=expected):
                discover(issuer)
        finally:
            server.close()


def test_an_unreachable_provider_at_hub_start_is_named():
    with pytest.raises(OIDCSettingsError, match=r"TRE_OIDC_ISSUER cannot be reached .*start the hub again"):
        discover(f"http://127.0.0.1:{closed_port()}/realms/tre", timeout=5)


def test_sign_out_address_carries_the_id_token_and_the_way_back():
    url = end_session_redirect("https://idp.example.org/logout?ui_locales=fr", id_token="eyJ.x.y",
                               post_logout_redirect_url="https://tre.example.org/hub/login", client_id="tre-hub")
    parsed = urlparse(url)
    assert parsed.path == "/logout"
    assert parse_qs(parsed.query) == {"ui_locales": ["fr"], "id_token_hint": ["eyJ.x.y"], "client_id": ["tre-hub"],
                                      "post_logout_redirect_uri": ["https://tre.example.org/hub/login"]}


def test_the_crypt_key_is_made_once_and_kept_private(tmp_path):
    key = crypt_key(tmp_path / "secrets")
    assert len(bytes.fromhex(key)) == 32
    assert crypt_key(tmp_path / "secrets") == key
    assert (tmp_path / "secrets" / "jupyterhub_crypt_key").stat().st_mode & 0o077 == 0


class CallbackRequest:
    """What OAuthenticator reads of the hub's callback handler: the code, the PKCE state cookie,
    the browser's language and address."""

    def __init__(self, language: str) -> None:
        self.request = SimpleNamespace(headers={"Accept-Language": language}, remote_ip="127.0.0.1")

    def get_argument(self, name, default=None):
        return {"code": "a-code"}.get(name, default)

    def get_state_cookie(self):
        return _serialize_state({"state_id": "s", "code_verifier": "v" * 43})


@pytest.mark.parametrize(("language", "first_words"), [
    ("en-GB", "The identity provider cannot be reached"),
    ("fr-FR", "Le fournisseur d’identité est injoignable"),
])
def test_an_unreachable_provider_at_sign_in_gives_a_clear_page_and_an_audit_row(tmp_path, language, first_words):
    url = f"sqlite:///{tmp_path / 'tre.sqlite'}"
    upgrade(url)
    config = authenticator_config(make_settings(tmp_path, database_url=url), ProviderEndpoints(
        f"http://127.0.0.1:{closed_port()}/auth", f"http://127.0.0.1:{closed_port()}/token",
        f"http://127.0.0.1:{closed_port()}/me"))
    authenticator = TREOIDCAuthenticator(**config)
    with pytest.raises(SignOnRefused) as refused:
        asyncio.run(authenticator.authenticate(CallbackRequest(language)))
    assert refused.value.status_code == 502
    assert refused.value.jupyterhub_message.startswith(first_words)
    assert "Traceback" not in refused.value.jupyterhub_message
    with session_scope(url) as session:
        rows = session.query(AuditEvent).all()
        assert [(row.action, row.details["reason"]) for row in rows] == [("login.failed", "provider-unreachable")]
