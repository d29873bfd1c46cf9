"""Issue 19, item 4: the sign-in's assurance (acr/amr against TRE_OIDC_ACR_VALUES) and the binding
of each catalogue person to the provider's account (sub); refusals in English and French."""

from __future__ import annotations

import base64
import json

import pytest
from sqlalchemy import select

from tre_core.db import session_scope
from tre_core.i18n import _messages, translate
from datasets.identity import (ASSURANCE_TOO_LOW, SUBJECT_MISMATCH, IdentityRefused, bind_subject, check_assurance,
                               sign_in_claims, unbind_subject)
from datasets.models import AuditEvent, Person
from datasets.workflow import PermissionDenied, WorkflowError


def jwt(claims: dict) -> str:
    part = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJSUzI1NiJ9.{part}.c2lnbmF0dXJl"


def test_the_acr_of_the_id_token_is_checked_against_the_setting():
    claims = sign_in_claims({"id_token": jwt({"sub": "alice", "acr": "urn:tre:mfa", "amr": ["pwd", "otp"]}),
                             "oauth_user": {"sub": "alice", "preferred_username": "alice"}}, "oauth_user")
    assert claims["acr"] == "urn:tre:mfa" and claims["preferred_username"] == "alice"
    check_assurance(claims, "urn:tre:mfa")
    check_assurance(claims, "otp")  # an amr method named in the setting is enough (Entra ID's "mfa")
    check_assurance({"acr": "urn:tre:pwd"}, None)  # nothing asked, nothing checked
    for weak in ({"acr": "urn:tre:pwd", "amr": ["pwd"]}, {}, {"amr": "mfa"}):
        with pytest.raises(IdentityRefused) as refused:
            check_assurance(weak, "urn:tre:mfa mfa")
        assert refused.value.reason == "assurance-too-low"
        assert refused.value.params["required"] == "urn:tre:mfa or mfa"


def test_an_id_token_that_is_not_one_gives_no_claims():
    assert sign_in_claims({"id_token": "not.a-jwt.%%%"}, "oauth_user") == {}
    assert sign_in_claims({}, "oauth_user") == {}


def test_the_refusals_are_said_in_english_and_french():
    french = _messages("fr")
    assert ASSURANCE_TOO_LOW in french and SUBJECT_MISMATCH in french
    said = translate("fr", ASSURANCE_TOO_LOW, acr="urn:tre:pwd", required="urn:tre:mfa")
    assert "niveau d’assurance" in said and "urn:tre:pwd" in said
    assert "another account" in translate("en", SUBJECT_MISMATCH, username="alice")
    assert "un autre compte" in translate("fr", SUBJECT_MISMATCH, username="alice")


def bound_rows(url: str) -> list[tuple[str, str, dict]]:
    with session_scope(url) as session:
        return [(e.actor, e.action, e.details) for e in session.scalars(select(AuditEvent).order_by(AuditEvent.seq))
                if e.action.startswith("identity.")]


def test_a_person_is_bound_at_first_sign_in_and_another_account_is_refused(catalogue_url):
    with session_scope(catalogue_url) as session:
        assert bind_subject(session, "alice", "sub-alice-1") is True
    with session_scope(catalogue_url) as session:
        assert bind_subject(session, "alice", "sub-alice-1") is False  # the same account, again
        assert session.get(Person, "alice").oidc_subject == "sub-alice-1"
    with session_scope(catalogue_url) as session, pytest.raises(IdentityRefused) as refused:
        bind_subject(session, "alice", "sub-someone-else")
    assert refused.value.reason == "subject-mismatch"
    # an account bound to alice cannot be used for bob either
    with session_scope(catalogue_url) as session, pytest.raises(IdentityRefused):
        bind_subject(session, "bob", "sub-alice-1")
    assert [(actor, action) for actor, action, _ in bound_rows(catalogue_url)] == [("alice", "identity.bound")]


def test_a_steward_releases_a_binding_with_a_reason(catalogue_url):
    with session_scope(catalogue_url) as session:
        bind_subject(session, "alice", "sub-alice-1")
    with session_scope(catalogue_url) as session, pytest.raises(PermissionDenied):
        unbind_subject(session, "bob", "alice", "ticket 12")
    with session_scope(catalogue_url) as session, pytest.raises(WorkflowError, match="reason"):
        unbind_subject(session, "steward", "alice", " ")
    with session_scope(catalogue_url) as session:
        assert unbind_subject(session, "steward", "alice", "account re-created, ticket 12") == "sub-alice-1"
    with session_scope(catalogue_url) as session:
        assert bind_subject(session, "alice", "sub-alice-2") is True
    assert [(actor, action) for actor, action, _ in bound_rows(catalogue_url)] == [
        ("alice", "identity.bound"), ("steward", "identity.unbound"), ("alice", "identity.bound")]
