"""Every state rule of an export request, in one place: what each state allows.

The transition table is the workflow; the sets below it say what else a state allows (changing
files, taking reviews, reading frozen files, downloading), what is blind while checkers review,
and what must hold before a release. Who may act is ``egress_review.permissions``; the acts
themselves are ``egress_review.logic``, which changes a state only through ``require_transition``
and a conditional UPDATE, and asks these functions before it writes. Terminal states allow nothing.
Each ``check_*`` returns nothing when the rule holds and raises the refusal a person reads.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from egress_review.checks.i18n import Msg
from egress_review.errors import BadInput, Forbidden, StateConflict
from egress_review.models import RequestState as S

M = Msg


class Step(enum.StrEnum):
    SUBMIT = "submit"
    REVIEW = "review"  # a review is recorded; the state follows from how many are complete
    RETURN = "return"
    REJECT = "reject"
    APPROVE = "approve"  # a checker decides to release; the copy out follows
    RELEASE = "release"  # the copy out is done
    WITHDRAW = "withdraw"
    RESUBMIT = "resubmit"  # the state follows from the reviews that still hold


TRANSITIONS: dict[S, dict[Step, frozenset[S]]] = {
    S.DRAFT: {Step.SUBMIT: frozenset({S.SUBMITTED}), Step.WITHDRAW: frozenset({S.WITHDRAWN})},
    S.SUBMITTED: {Step.REVIEW: frozenset({S.PARTIALLY_REVIEWED, S.REVIEWED}), Step.WITHDRAW: frozenset({S.WITHDRAWN})},
    S.PARTIALLY_REVIEWED: {Step.REVIEW: frozenset({S.PARTIALLY_REVIEWED, S.REVIEWED}),
                           Step.WITHDRAW: frozenset({S.WITHDRAWN})},
    S.REVIEWED: {Step.RETURN: frozenset({S.RETURNED}), Step.REJECT: frozenset({S.REJECTED}),
                 Step.APPROVE: frozenset({S.APPROVED}), Step.WITHDRAW: frozenset({S.WITHDRAWN})},
    S.RETURNED: {Step.RESUBMIT: frozenset({S.SUBMITTED, S.PARTIALLY_REVIEWED, S.REVIEWED}),
                 Step.WITHDRAW: frozenset({S.WITHDRAWN})},
    S.APPROVED: {Step.RELEASE: frozenset({S.RELEASED})},
    S.RELEASED: {}, S.REJECTED: {}, S.WITHDRAWN: {},
}

# The researcher may change files and groups only while the request is in their hands.
EDITABLE = frozenset({S.DRAFT, S.RETURNED})
# States in which a checker has something to do (the queue); frozen files are read only then.
AWAITING_CHECKERS = frozenset({S.SUBMITTED, S.PARTIALLY_REVIEWED, S.REVIEWED})
# States that take reviews; while in them reviews are blind: a checker sees only their own.
TAKES_REVIEWS = BLIND = frozenset({S.SUBMITTED, S.PARTIALLY_REVIEWED})
# States in which the researcher reads the reviews and the comments made visible to them.
SHOWN_TO_RESEARCHER = frozenset({S.RETURNED, S.APPROVED, S.RELEASED, S.REJECTED})
# Released files download only once the copy out is done.
DOWNLOADABLE = frozenset({S.RELEASED})
TERMINAL = frozenset(state for state, steps in TRANSITIONS.items() if not steps)
MIN_REVIEWS = 2  # the project may ask for more, never fewer


def allowed(state: S, step: Step) -> frozenset[S]:
    """The states ``step`` may lead to from ``state``; empty when the step is not allowed."""
    return TRANSITIONS[state].get(step, frozenset())


def require_transition(state: S, step: Step, to: S) -> None:
    if to not in allowed(state, step):
        raise StateConflict(M("This request is {state}; the step “{step}” is not possible now.",
                              state=state.value, step=step.value))


def reviews_required(project_setting: int | None) -> int:
    return max(MIN_REVIEWS, project_setting or MIN_REVIEWS)


def state_after_reviews(complete_reviews: int, required: int) -> S:
    """Where a submitted request stands once ``complete_reviews`` checkers have decided every file."""
    if complete_reviews >= required:
        return S.REVIEWED
    return S.PARTIALLY_REVIEWED if complete_reviews else S.SUBMITTED


def check_editable(request_id: int, state: S) -> None:
    if state not in EDITABLE:
        raise StateConflict(M("Request {id} is {state}; files change only while it is a draft or returned to you.",
                              id=request_id, state=state.value))


def check_takes_reviews(request_id: int, state: S) -> None:
    if state not in TAKES_REVIEWS:
        raise StateConflict(M("Request {id} is {state}; it takes no more reviews.", id=request_id, state=state.value))


def check_frozen_readable(request_id: int, state: S) -> None:
    if state not in AWAITING_CHECKERS:
        raise Forbidden(M("Request {id} is {state}: its files are read only while it awaits its checkers.",
                          id=request_id, state=state.value))


def check_downloadable(request_id: int, state: S) -> None:
    if state not in DOWNLOADABLE:
        raise StateConflict(M("Request {id} is {state}; only released files download.", id=request_id,
                              state=state.value))


def check_override(name: str, outcome: str, decision: str, reason: str) -> str | None:
    """A Fail is final unless overridden on the record: approving a failed file needs a written reason."""
    if outcome != "fail" or decision != "approve":
        return None
    if not reason.strip():
        raise BadInput(M("{file} failed the automatic checks: a Fail is final unless you override it. To approve "
                         "it, write why it is safe to release despite the Fail; otherwise request changes or "
                         "reject it.", file=name))
    return reason.strip()


@dataclass(frozen=True)
class OutputFacts:
    """An output file as the release rule sees it."""

    name: str
    approvals: int
    failed: bool = False  # its automatic outcome is Fail
    overrides: int = 0  # approvals that carry a checker's written override


def check_release(request_id: int, state: S, decided_by: str | None, outputs: list[OutputFacts],
                  required: int) -> None:
    """Not released already; every output approved enough; every failed one overridden on the record."""
    if state in (S.APPROVED, S.RELEASED):  # by another checker, or the same one twice
        raise StateConflict(M("Request {id} has been released already (by {who}); nothing more was done.",
                              id=request_id, who=decided_by or "?"))
    short = [f.name for f in outputs if f.approvals < required]
    if state == S.REVIEWED and short:
        raise StateConflict(M("{files} lack {required} approvals; return or reject the request.",
                              files=", ".join(short), required=required))
    final = [f.name for f in outputs if f.failed and not f.overrides]
    if final:
        raise StateConflict(M("{files} failed the automatic checks and no checker overrode the Fail with a written "
                              "reason; a Fail is final: return or reject the request.", files=", ".join(final)))


def review_visible(state: S, reviewer: str, viewer: str, viewer_is_checker_or_admin: bool) -> bool:
    """One's own review; the others' for checkers after blind review, for the researcher once decided."""
    if reviewer == viewer:
        return True
    return viewer_is_checker_or_admin and state not in BLIND or state in SHOWN_TO_RESEARCHER


def comment_visible(state: S, *, own_or_researchers: bool, viewer_sees_private: bool,
                    visible_to_researcher: bool, earlier_round: bool = False) -> bool:
    """Researchers' comments: by all who see the request; a checker's: by checkers after blind review,
    by the researcher only when made visible and the request is back with them or decided, or when it
    was made in an earlier round (before the latest submission): what the checkers asked stays in view
    while the resubmission is reviewed."""
    if own_or_researchers:
        return True
    if viewer_sees_private:
        return state not in BLIND or earlier_round
    return visible_to_researcher and (state in SHOWN_TO_RESEARCHER or earlier_round)
