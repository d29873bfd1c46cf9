"""Who may act on an export request, apart from what its state allows (``egress_review.policies``).

Pure functions of plain values, so the rules read in one place and are tested without a
database. Each returns ``None`` when the act is allowed, or the refusal a person reads (what is
wrong and what to do), in English; the caller translates it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from egress_review.checks.i18n import Msg as M


@dataclass(frozen=True)
class Actor:
    """A signed-in person as the rules see them: the projects they may act for today, the projects
    they are or were tied to, and their roles (all from ``datasets.access`` for a real person)."""

    username: str
    projects: frozenset[str] = frozenset()
    is_admin: bool = False
    checker_until: dt.date | None = None
    # every project the person is or was tied to, whatever its status: member now or once, or
    # applicant. A checker reviews none of them (a suspended project's member is no outsider).
    ties: frozenset[str] = frozenset()
    # the catalogue's answer (``datasets.access.is_accredited_checker``) for the actor's day, when asked
    accredited: bool | None = None

    def accredited_on(self, today: dt.date) -> bool:
        if self.accredited is not None:
            return self.accredited
        return self.checker_until is not None and today <= self.checker_until


@dataclass(frozen=True)
class RequestFacts:
    project: str
    author: str
    is_draft: bool


def refusal_to_create(actor: Actor, project: str) -> str | None:
    if project not in actor.projects:
        return M("You are not an active member of project {project}; only its members export its "
                          "results. Pick one of your projects.", project=project)
    return None


def refusal_to_edit(actor: Actor, request: RequestFacts) -> str | None:
    """Adding, replacing, submitting and withdrawing are the author's, while still a member."""
    if actor.username != request.author:
        return M("Only the author of this request ({author}) may change, submit or withdraw it.",
                          author=request.author)
    if request.project not in actor.projects:
        return M("You are no longer an active member of project {project}; ask a data steward.",
                          project=request.project)
    return None


def refusal_to_review(actor: Actor, request: RequestFacts, today: dt.date) -> str | None:
    """Reviewing and deciding (return, reject, release) are for checkers independent of the project."""
    if actor.checker_until is None:
        return M("Only output checkers review export requests.")
    if not actor.accredited_on(today):
        return M("Your output checker accreditation ended on {date}; ask an admin to renew it before "
                          "reviewing.", date=actor.checker_until.isoformat())
    if actor.username == request.author:
        return M("You wrote this request: no one reviews their own request.")
    if request.project in actor.projects | actor.ties:
        return M("You are a member of project {project}: its requests are reviewed by checkers from "
                          "outside the project.", project=request.project)
    return None


def refusal_to_download(actor: Actor, request: RequestFacts) -> str | None:
    """Released results go to the project's researchers, never to checkers or other projects."""
    if request.project not in actor.projects:
        return M("Released files of project {project} go to its members only.", project=request.project)
    return None


def may_view(actor: Actor, request: RequestFacts, today: dt.date) -> bool:
    """Members and admins see their requests; checkers see the ones they may review once submitted."""
    if actor.is_admin or request.project in actor.projects:
        return True
    return not request.is_draft and refusal_to_review(actor, request, today) is None


def sees_checker_comments(actor: Actor, request: RequestFacts, today: dt.date) -> bool:
    return refusal_to_review(actor, request, today) is None or (
        actor.is_admin and request.project not in actor.projects)
