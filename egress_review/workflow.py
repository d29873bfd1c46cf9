"""What each state of an export request allows: the whole workflow as one transition table.

Who may take a step is ``egress_review.permissions``; the acts themselves are in
``egress_review.requests``, which changes a state only through ``require_transition`` and a
conditional UPDATE. Terminal states allow nothing.
"""

from __future__ import annotations

import enum

from egress_review.models import RequestState as S
from egress_review.text import Message


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
# States in which a checker has something to do (the queue).
AWAITING_CHECKERS = frozenset({S.SUBMITTED, S.PARTIALLY_REVIEWED, S.REVIEWED})
TERMINAL = frozenset(state for state, steps in TRANSITIONS.items() if not steps)


class StateConflict(ValueError):
    """The request's state does not allow this step (HTTP 409); the message says what it is."""


def allowed(state: S, step: Step) -> frozenset[S]:
    """The states ``step`` may lead to from ``state``; empty when the step is not allowed."""
    return TRANSITIONS[state].get(step, frozenset())


def require_transition(state: S, step: Step, to: S) -> None:
    if to not in allowed(state, step):
        raise StateConflict(Message.of("This request is {state}; the step “{step}” is not possible now.",
                                       state=state.value, step=step.value))


def state_after_reviews(complete_reviews: int, required: int) -> S:
    """Where a submitted request stands once ``complete_reviews`` checkers have decided every file."""
    if complete_reviews >= required:
        return S.REVIEWED
    return S.PARTIALLY_REVIEWED if complete_reviews else S.SUBMITTED
