"""The egress workflow's rules without a database: the transition table and who may act."""

from __future__ import annotations

import datetime as dt

import pytest

from egress_review.models import RequestState as S
from egress_review.permissions import (Actor, RequestFacts, may_view, refusal_to_create, refusal_to_download,
                                       refusal_to_edit, refusal_to_review)
from egress_review.policies import (TERMINAL, TRANSITIONS, StateConflict, Step, allowed, require_transition,
                                    state_after_reviews)

TODAY = dt.date(2026, 11, 23)
REQUEST = RequestFacts(project="cardio-risk", author="alice", is_draft=False)
ALICE = Actor("alice", frozenset({"cardio-risk"}))
ERIN = Actor("erin", frozenset({"cardio-risk"}))
BOB = Actor("bob", frozenset({"diabetes-outcomes"}))
CAROL = Actor("carol", checker_until=dt.date(2027, 12, 31))
ERIN_CHECKER = Actor("erin", frozenset({"cardio-risk"}), checker_until=dt.date(2027, 12, 31))
EXPIRED = Actor("dave", checker_until=dt.date(2026, 11, 22))
ADMIN = Actor("admin", is_admin=True)


def test_every_state_is_in_the_table_and_only_the_end_states_allow_nothing():
    assert set(TRANSITIONS) == set(S)
    assert TERMINAL == {S.RELEASED, S.REJECTED, S.WITHDRAWN}
    assert all(to in S for steps in TRANSITIONS.values() for targets in steps.values() for to in targets)


def test_the_paths_of_a_request():
    assert allowed(S.DRAFT, Step.SUBMIT) == {S.SUBMITTED}
    assert allowed(S.REVIEWED, Step.APPROVE) == {S.APPROVED}
    assert allowed(S.APPROVED, Step.RELEASE) == {S.RELEASED}
    assert S.REVIEWED in allowed(S.RETURNED, Step.RESUBMIT)
    # Decisions wait for the reviews; nothing is released, returned or rejected before.
    for state in (S.DRAFT, S.SUBMITTED, S.PARTIALLY_REVIEWED):
        assert not allowed(state, Step.APPROVE) and not allowed(state, Step.RETURN) and not allowed(state, Step.REJECT)
    # Once a checker approved, the author can no longer pull the request back half-released.
    assert not allowed(S.APPROVED, Step.WITHDRAW)
    with pytest.raises(StateConflict, match="released"):
        require_transition(S.RELEASED, Step.WITHDRAW, S.WITHDRAWN)


def test_two_complete_reviews_make_a_request_reviewed():
    assert state_after_reviews(0, 2) is S.SUBMITTED
    assert state_after_reviews(1, 2) is S.PARTIALLY_REVIEWED
    assert state_after_reviews(2, 2) is S.REVIEWED
    assert state_after_reviews(2, 3) is S.PARTIALLY_REVIEWED


def test_only_members_create_and_only_the_author_edits():
    assert refusal_to_create(ALICE, "cardio-risk") is None
    assert "not an active member" in refusal_to_create(BOB, "cardio-risk")
    assert refusal_to_edit(ALICE, REQUEST) is None
    assert "Only the author" in refusal_to_edit(ERIN, REQUEST)
    assert "no longer an active member" in refusal_to_edit(Actor("alice"), REQUEST)


def test_checkers_review_only_requests_they_are_independent_of():
    assert refusal_to_review(CAROL, REQUEST, TODAY) is None
    assert "own request" in refusal_to_review(Actor("alice", frozenset({"cardio-risk"}), checker_until=TODAY),
                                              REQUEST, TODAY)
    assert "member of project cardio-risk" in refusal_to_review(ERIN_CHECKER, REQUEST, TODAY)
    assert "ended on 2026-11-22" in refusal_to_review(EXPIRED, REQUEST, TODAY)
    assert "Only output checkers" in refusal_to_review(BOB, REQUEST, TODAY)
    assert "Only output checkers" in refusal_to_review(ADMIN, REQUEST, TODAY)


def test_released_files_go_to_the_project_only():
    assert refusal_to_download(ALICE, REQUEST) is None and refusal_to_download(ERIN, REQUEST) is None
    for outsider in (BOB, CAROL, ADMIN):
        assert refusal_to_download(outsider, REQUEST) is not None


def test_drafts_are_seen_by_the_project_and_admins_only():
    draft = RequestFacts("cardio-risk", "alice", is_draft=True)
    assert may_view(ERIN, draft, TODAY) and may_view(ADMIN, draft, TODAY)
    assert not may_view(CAROL, draft, TODAY) and may_view(CAROL, REQUEST, TODAY)
    assert not may_view(BOB, REQUEST, TODAY) and not may_view(EXPIRED, REQUEST, TODAY)
