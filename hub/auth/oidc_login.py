"""Sign-on through an institution's OpenID Connect provider (Keycloak, Microsoft Entra ID, …).

OAuthenticator's ``GenericOAuthenticator`` does the OAuth 2 code flow (with PKCE); this module adds
what a TRE needs around it, and nothing the provider decides on its own:

- the provider's endpoints come from the ``TRE_OIDC_*`` settings, by discovery
  (``<issuer>/.well-known/openid-configuration``, read once when the hub starts) or given one by
  one; a missing or wrong setting stops the hub with a message naming it (``authenticator_config``);
- *who may sign in* is the catalogue's decision, never the provider's claims or groups: a person
  the provider vouches for but the catalogue does not list gets a page saying whom to ask;
- every sign-in, refused sign-in and sign-out is one row of the audit log, as with the demo login;
- an unreachable provider gives a page saying so, not a traceback;
- signing out ends the provider's session too when it advertises an ``end_session_endpoint``
  (OpenID Connect RP-Initiated Logout: ``id_token_hint`` and ``post_logout_redirect_uri``).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlparse

import requests
from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.oauth2 import OAuthCallbackHandler, OAuthLogoutHandler
from tornado import web
from tornado.httpclient import HTTPClientError
from traitlets import Unicode

from datasets import audit
from datasets.audit import AuditAction
from datasets.catalogue import is_known
from datasets.identity import IdentityRefused, bind_subject, check_assurance, sign_in_claims
from tre_core.db import session_scope
from tre_core.i18n import negotiate, translate
from tre_core.settings import TRESettings, installation_secret
from hub.auth.throttle import ThrottledSignIn
from hub.hardening import QuietVersion

DISCOVERY_PATH = "/.well-known/openid-configuration"

UNKNOWN_PERSON = ("{provider} signed you in as “{username}”, but this TRE does not know you: only people "
                  "listed in its catalogue may use it. Ask a data steward of the TRE to add you, then sign in again.")
PROVIDER_UNREACHABLE = ("The identity provider cannot be reached at the moment, so you could not be signed in. "
                        "Try again in a few minutes; if it goes on, tell the TRE's administrators.")
PROVIDER_REFUSED = ("The identity provider did not confirm your sign-in. Sign in again from the TRE's home page; "
                    "if it goes on, tell the TRE's administrators.")
PROVIDER_DECLINED = ("The identity provider did not sign you in ({reason}). Sign in again from the TRE's home page; "
                     "if your institution asks for a second factor, have it at hand.")
NO_USERNAME = ("The identity provider sent no “{claim}” for you, so the TRE cannot tell who you are. "
               "Tell the TRE's administrators (setting TRE_OIDC_USERNAME_CLAIM).")


class OIDCSettingsError(ValueError):
    """A ``TRE_OIDC_*`` setting is missing or wrong; the message names it and says what to do."""


@dataclass(frozen=True)
class ProviderEndpoints:
    authorize_url: str
    token_url: str
    userinfo_url: str
    end_session_url: str | None = None


class SignOnRefused(web.HTTPError):
    """An error page JupyterHub shows with our message as is (no traceback, no hub wording)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, "%s", message)
        self.jupyterhub_message = message


def _require_url(value: str, setting: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise OIDCSettingsError(f"{setting}={value!r} is not an http(s) URL; give the full address, "
                                "such as https://login.example.org/realms/tre.")
    return value


def discover(issuer: str, timeout: float = 10.0) -> ProviderEndpoints:
    """The provider's endpoints from its discovery document. Run once at hub start, so a wrong
    issuer or a provider down stops the hub with a clear message rather than failing each login."""
    issuer = _require_url(issuer, "TRE_OIDC_ISSUER").rstrip("/")
    url = issuer + DISCOVERY_PATH
    try:
        reply = requests.get(url, timeout=timeout)
    except requests.RequestException as error:
        raise OIDCSettingsError(
            f"The OpenID provider of TRE_OIDC_ISSUER cannot be reached ({url}: {type(error).__name__}). "
            "Check the issuer URL and that this host can reach the provider, then start the hub again."
        ) from error
    if reply.status_code != 200:
        raise OIDCSettingsError(f"{url} answered HTTP {reply.status_code}: TRE_OIDC_ISSUER is probably wrong "
                                "(Keycloak: https://<host>/realms/<realm>; Entra ID: "
                                "https://login.microsoftonline.com/<tenant>/v2.0).")
    try:
        document = reply.json()
    except ValueError as error:
        raise OIDCSettingsError(f"{url} is not an OpenID discovery document (not JSON): check TRE_OIDC_ISSUER.") from error
    if not isinstance(document, dict) or document.get("issuer", "").rstrip("/") != issuer:
        raise OIDCSettingsError(f"{url} describes issuer {document.get('issuer') if isinstance(document, dict) else None!r}, "
                                f"not {issuer!r}: set TRE_OIDC_ISSUER to the provider's exact issuer.")
    missing = [key for key in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint") if not document.get(key)]
    if missing:
        raise OIDCSettingsError(f"The provider of TRE_OIDC_ISSUER advertises no {', '.join(missing)}; give them "
                                "with TRE_OIDC_AUTHORIZE_URL, TRE_OIDC_TOKEN_URL and TRE_OIDC_USERINFO_URL.")
    return ProviderEndpoints(document["authorization_endpoint"], document["token_endpoint"],
                             document["userinfo_endpoint"], document.get("end_session_endpoint"))


def provider_endpoints(settings: TRESettings, fetch=discover) -> ProviderEndpoints:
    """Endpoints given one by one win over discovery, for providers without a discovery document."""
    if settings.oidc_authorize_url:
        given = {"TRE_OIDC_TOKEN_URL": settings.oidc_token_url}
        if not settings.oidc_userdata_from_id_token:
            given["TRE_OIDC_USERINFO_URL"] = settings.oidc_userinfo_url
        missing = [name for name, value in given.items() if not value]
        if missing:
            raise OIDCSettingsError(f"TRE_OIDC_AUTHORIZE_URL is set but {' and '.join(missing)} not: give all three "
                                    "endpoints, or TRE_OIDC_ISSUER alone for discovery.")
        for name, value in [("TRE_OIDC_AUTHORIZE_URL", settings.oidc_authorize_url), *given.items()]:
            _require_url(value, name)
        return ProviderEndpoints(settings.oidc_authorize_url, settings.oidc_token_url, settings.oidc_userinfo_url or "",
                                 settings.oidc_end_session_url)
    if not settings.oidc_issuer:
        raise OIDCSettingsError("Set TRE_OIDC_ISSUER (the provider's issuer URL) to sign people in through OpenID Connect.")
    found = fetch(settings.oidc_issuer)
    if settings.oidc_end_session_url:
        found = ProviderEndpoints(found.authorize_url, found.token_url, found.userinfo_url, settings.oidc_end_session_url)
    return found


def client_secret(settings: TRESettings) -> str:
    """The secret from its file (kept out of the environment and of ps) or the setting."""
    if settings.oidc_client_secret_file:
        try:
            secret = settings.oidc_client_secret_file.read_text().strip()
        except OSError as error:
            raise OIDCSettingsError(f"TRE_OIDC_CLIENT_SECRET_FILE={settings.oidc_client_secret_file} cannot be read "
                                    f"({error.strerror}); put the client secret there, readable by the hub only.") from error
        if not secret:
            raise OIDCSettingsError(f"TRE_OIDC_CLIENT_SECRET_FILE={settings.oidc_client_secret_file} is empty.")
        return secret
    if not settings.oidc_client_secret:
        raise OIDCSettingsError("Set TRE_OIDC_CLIENT_SECRET_FILE (a file holding the client secret the provider gave "
                                "for the hub) or TRE_OIDC_CLIENT_SECRET.")
    return settings.oidc_client_secret


def authenticator_config(settings: TRESettings, endpoints: ProviderEndpoints) -> dict[str, Any]:
    """The traits of ``TREOIDCAuthenticator`` for these settings: a pure function, so every
    missing or wrong setting is found by a unit test and named before the hub starts."""
    if not settings.oidc_client_id:
        raise OIDCSettingsError("Set TRE_OIDC_CLIENT_ID to the client id the provider registered for the hub.")
    if not settings.oidc_callback_url:
        raise OIDCSettingsError("Set TRE_OIDC_CALLBACK_URL to the hub's redirect URI registered at the provider, "
                                "such as https://tre.example.org/hub/oauth_callback.")
    callback = _require_url(settings.oidc_callback_url, "TRE_OIDC_CALLBACK_URL")
    if not urlparse(callback).path.endswith("/hub/oauth_callback"):
        raise OIDCSettingsError(f"TRE_OIDC_CALLBACK_URL={callback!r} must end with /hub/oauth_callback, the hub's "
                                "callback address (register the same URI at the provider).")
    scopes = settings.oidc_scopes.split()
    if "openid" not in scopes:
        raise OIDCSettingsError(f"TRE_OIDC_SCOPES={settings.oidc_scopes!r} lacks “openid”: without it the provider "
                                "gives no ID token, so no sign-out at the provider. Use e.g. “openid profile email”.")
    if not settings.oidc_username_claim.strip():
        raise OIDCSettingsError("TRE_OIDC_USERNAME_CLAIM is empty; name the claim holding the catalogue username "
                                "(preferred_username, email, …).")
    extra = {"acr_values": settings.oidc_acr_values} if settings.oidc_acr_values else {}
    return {
        "client_id": settings.oidc_client_id,
        "client_secret": client_secret(settings),
        "authorize_url": endpoints.authorize_url,
        "token_url": endpoints.token_url,
        # claims from the userinfo endpoint, or from the ID token the token endpoint returned (over TLS)
        "userdata_url": "" if settings.oidc_userdata_from_id_token else endpoints.userinfo_url,
        "userdata_from_id_token": settings.oidc_userdata_from_id_token,
        "oauth_callback_url": callback,
        "scope": scopes,
        "username_claim": settings.oidc_username_claim,
        "extra_authorize_params": extra,
        "required_acr_values": settings.oidc_acr_values or "",
        "enable_pkce": settings.oidc_pkce,
        "login_service": settings.oidc_login_service,
        "end_session_url": endpoints.end_session_url or "",
        # back to the hub's login page once the provider has ended its session
        "post_logout_redirect_url": callback[: -len("/oauth_callback")] + "/login",
        "catalogue_url": settings.catalogue_url,
        "enable_auth_state": True,
    }


def crypt_key(secrets_dir: Path) -> str:
    """This installation's JUPYTERHUB_CRYPT_KEY (auth state, tokens included, is encrypted with
    it): created once, readable by root only, never in the repository."""
    return installation_secret(secrets_dir, "jupyterhub_crypt_key", lambda: secrets.token_hex(32))


def end_session_redirect(end_session_url: str, *, id_token: str | None, post_logout_redirect_url: str,
                         client_id: str) -> str:
    """The provider's logout address for this person (OpenID Connect RP-Initiated Logout 1.0)."""
    params = {"post_logout_redirect_uri": post_logout_redirect_url, "client_id": client_id}
    if id_token:
        params["id_token_hint"] = id_token
    separator = "&" if urlparse(end_session_url).query else "?"
    return f"{end_session_url}{separator}{urlencode(params)}"


class TRECallbackHandler(OAuthCallbackHandler):
    """The provider's answer: an ``error`` it sends back (the person cancelled, a second factor
    failed, the ``acr_values`` could not be met) is an audited refusal in the reader's language."""

    async def get(self) -> None:
        self.authenticator.check_throttle(self, None)  # per address here; per account once known
        try:
            error = self.get_argument("error", "")
            if error:
                await self._declined(error, self.get_argument("error_description", error))
            await super().get()
        except SignOnRefused as refused:
            self.authenticator.sign_in_failed(self, getattr(refused, "account", None))
            raise

    async def _declined(self, error: str, reason: str) -> None:
        authenticator: TREOIDCAuthenticator = self.authenticator
        self.log.warning("The OpenID provider declined a sign-in: %s (%s)", error, reason)
        await asyncio.to_thread(authenticator.audit, "(unknown)", AuditAction.LOGIN_FAILED, {
            "method": "oidc", "reason": "provider-declined", "error": error, "description": reason,
            "remote_ip": self.request.remote_ip})
        language = negotiate(self.request.headers.get("Accept-Language"))
        raise SignOnRefused(403, translate(language, PROVIDER_DECLINED, reason=reason))


class TRELogoutHandler(OAuthLogoutHandler):
    """Sign-out: the hub's session, then the provider's when it has a logout endpoint (otherwise
    the provider would sign the person straight back in on the next visit)."""

    _end_session: str | None = None

    async def handle_logout(self) -> None:
        await super().handle_logout()
        user = self.current_user  # still the signed-out person: JupyterHub clears it after this hook
        authenticator: TREOIDCAuthenticator = self.authenticator
        if user is None:
            return
        await asyncio.to_thread(authenticator.audit, user.name, AuditAction.LOGOUT,
                                {"method": "oidc", "remote_ip": self.request.remote_ip})
        if authenticator.end_session_url:
            auth_state = await user.get_auth_state() or {}
            self._end_session = end_session_redirect(
                authenticator.end_session_url, id_token=auth_state.get("id_token"),
                post_logout_redirect_url=authenticator.post_logout_redirect_url, client_id=authenticator.client_id)

    async def render_logout_page(self) -> None:
        if self._end_session:
            self.redirect(self._end_session)
            return
        await super().render_logout_page()


class TREOIDCAuthenticator(ThrottledSignIn, QuietVersion, GenericOAuthenticator):
    """GenericOAuthenticator whose sign-ins are decided by the catalogue and audited."""

    catalogue_url = Unicode(help="SQLAlchemy URL of the TRE catalogue.").tag(config=True)
    end_session_url = Unicode("", help="The provider's end_session_endpoint; empty: none.").tag(config=True)
    post_logout_redirect_url = Unicode(
        "", help="Where the provider sends people back after ending its session (registered at the provider)."
    ).tag(config=True)

    required_acr_values = Unicode(
        "", help="acr (or amr) values a sign-in must come back with, space-separated; empty: none checked."
    ).tag(config=True)

    callback_handler = TRECallbackHandler
    logout_handler = TRELogoutHandler

    async def authenticate(self, handler, data=None, **kwargs):
        language = negotiate(handler.request.headers.get("Accept-Language"))
        remote_ip = handler.request.remote_ip
        try:
            model = await super().authenticate(handler, data, **kwargs)
        except (HTTPClientError, OSError) as error:
            if isinstance(error, HTTPClientError) and error.response is not None:
                await self._refuse("", {"reason": "provider-refused", "status": error.code, "remote_ip": remote_ip})
                raise SignOnRefused(403, translate(language, PROVIDER_REFUSED)) from error
            self.log.error("OpenID provider unreachable at %s: %s", self.token_url, error)
            await self._refuse("", {"reason": "provider-unreachable", "remote_ip": remote_ip})
            raise SignOnRefused(502, translate(language, PROVIDER_UNREACHABLE)) from error
        except ValueError as error:  # the username claim is missing from the userinfo
            self.log.error("No %s claim in the provider's userinfo: %s", self.username_claim, error)
            await self._refuse("", {"reason": "no-username-claim", "claim": self.username_claim, "remote_ip": remote_ip})
            raise SignOnRefused(403, translate(language, NO_USERNAME, claim=self.username_claim)) from error
        username = model["name"]
        subject = (model.get("auth_state") or {}).get(self.user_auth_state_key, {}).get("sub")
        self.check_throttle(handler, username)
        if not await asyncio.to_thread(self._in_catalogue, username):
            self.log.warning("Sign-in refused: %s (subject %s) is not in the catalogue", username, subject)
            await self._refuse(username, {"reason": "unknown-person", "subject": subject, "remote_ip": remote_ip})
            refused = SignOnRefused(403, translate(language, UNKNOWN_PERSON, provider=self.login_service, username=username))
            refused.account = username
            raise refused
        try:  # second factor as asked, and the same provider account as at the first sign-in
            check_assurance(sign_in_claims(model.get("auth_state") or {}, self.user_auth_state_key),
                            self.required_acr_values)
            await asyncio.to_thread(self._bind, username, subject)
        except IdentityRefused as refused:
            self.log.warning("Sign-in refused: %s (subject %s): %s", username, subject, refused.reason)
            await self._refuse(username, {"reason": refused.reason, "subject": subject, "remote_ip": remote_ip,
                                          **refused.params})
            raise SignOnRefused(403, translate(language, refused.message, **refused.params)) from None
        self.sign_in_succeeded(username)
        await asyncio.to_thread(self.audit, username, AuditAction.LOGIN,
                                {"method": "oidc", "subject": subject, "remote_ip": remote_ip})
        return model

    def _bind(self, username: str, subject: str | None) -> None:
        with session_scope(self.catalogue_url) as session:
            bind_subject(session, username, subject)

    async def _refuse(self, username: str, details: dict[str, Any]) -> None:
        await asyncio.to_thread(self.audit, username or "(unknown)", AuditAction.LOGIN_FAILED,
                                {"method": "oidc", **details})

    def audit(self, actor: str, action: AuditAction, details: dict[str, Any]) -> None:
        with session_scope(self.catalogue_url) as session:
            audit.record(session, actor, action, details=details)

    async def check_allowed(self, username, auth_model):
        """The catalogue alone decides; the provider's groups and claims grant nothing."""
        return await asyncio.to_thread(self._in_catalogue, username)

    def _in_catalogue(self, username: str) -> bool:
        with session_scope(self.catalogue_url) as session:
            return is_known(session, username)
