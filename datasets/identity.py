"""Who signed in, and how strongly: the OpenID sign-in's identity rules (SATRE 3.2.04, 1.5.06).

- *Assurance*: when ``TRE_OIDC_ACR_VALUES`` is set, the hub asks the provider for those levels
  (``acr_values``) and accepts the sign-in only if the ``acr`` claim that comes back is one of them,
  or one of the ``amr`` methods is; a provider that skipped the second factor is refused.
- *Binding*: a catalogue person is bound to the provider's ``sub`` (the stable, never reassigned
  account id) at their first sign-in; a later sign-in under the same username with another ``sub``
  (an account re-created or renamed at the institution, or another person given the name) is
  refused until a data steward unbinds it (``tre people unbind-identity``).

The claims are read from the userinfo and from the ID token the hub received from the token
endpoint itself over TLS (OpenID Connect Core 3.1.3.7: the TLS server validation stands in for the
signature check in that case).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from datasets import audit
from datasets.audit import AuditAction
from datasets.models import Person
from datasets.workflow import WorkflowError, require_steward

ASSURANCE_TOO_LOW = ("Your identity provider signed you in at a level of assurance this TRE does not accept "
                     "(it reported “{acr}”; the TRE asks for {required}): most often the second factor was "
                     "skipped. Sign in again from the TRE's home page with your second factor at hand; if it goes "
                     "on, tell the TRE's administrators.")
SUBJECT_MISMATCH = ("The identity provider signed you in as “{username}”, but through another account than the one "
                    "this name is bound to in the TRE, so you are not signed in. If your institution re-created "
                    "your account, ask a data steward of the TRE to check it and release the old binding.")


class IdentityRefused(Exception):
    """A sign-in refused by these rules; ``message`` is the English msgid, ``params`` fill it."""

    def __init__(self, reason: str, message: str, **params: Any) -> None:
        super().__init__(reason)
        self.reason, self.message, self.params = reason, message, params


def id_token_claims(id_token: str | None) -> dict[str, Any]:
    """The payload of a compact JWS, or {} if it is not one."""
    if not id_token or id_token.count(".") != 2:
        return {}
    payload = id_token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def sign_in_claims(auth_state: dict[str, Any], user_key: str) -> dict[str, Any]:
    """The userinfo's claims over the ID token's: ``acr``/``amr`` usually come in the ID token only."""
    return {**id_token_claims(auth_state.get("id_token")), **(auth_state.get(user_key) or {})}


def check_assurance(claims: dict[str, Any], required: str | None) -> None:
    """Refuse unless ``acr`` is one of the ``required`` values (space-separated), or an ``amr``
    method is; nothing is required when the setting is empty."""
    wanted = (required or "").split()
    if not wanted:
        return
    acr = claims.get("acr")
    amr = claims.get("amr") or []
    if acr in wanted or (isinstance(amr, list) and set(amr) & set(wanted)):
        return
    raise IdentityRefused("assurance-too-low", ASSURANCE_TOO_LOW, acr=acr or "none", required=" or ".join(wanted))


def bind_subject(session: Session, username: str, subject: str | None) -> bool:
    """Bind ``username`` to ``subject`` at its first sign-in (True, audited), accept the same
    subject later (False), refuse another one (``IdentityRefused``)."""
    if not subject:
        raise IdentityRefused("no-subject", SUBJECT_MISMATCH, username=username)
    person = session.get(Person, username)
    if person is None:  # the caller checked the catalogue; a person removed since is not bound
        raise IdentityRefused("unknown-person", SUBJECT_MISMATCH, username=username)
    if person.oidc_subject == subject:
        return False
    holder = session.scalar(select(Person.username).where(Person.oidc_subject == subject))
    if person.oidc_subject is not None or holder is not None:
        raise IdentityRefused("subject-mismatch", SUBJECT_MISMATCH, username=username)
    person.oidc_subject = subject
    audit.record(session, username, AuditAction.IDENTITY_BOUND, details={"subject": subject})
    return True


def unbind_subject(session: Session, actor: str, username: str, reason: str) -> str | None:
    """A steward releases a binding (the institution re-created the account): the next sign-in binds again."""
    require_steward(session, actor)
    person = session.get(Person, username)
    if person is None:
        raise WorkflowError(f"{username} is not in the catalogue.")
    if not reason.strip():
        raise WorkflowError("Give the reason for the record (--reason), e.g. the ticket of the institution's helpdesk.")
    old, person.oidc_subject = person.oidc_subject, None
    audit.record(session, actor, AuditAction.IDENTITY_UNBOUND,
                 details={"username": username, "subject": old, "reason": reason})
    return old
