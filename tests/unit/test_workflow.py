"""The access workflow: apply, approve or refuse, suspend, members and grants; audited; one
decision when two stewards decide at once."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from datasets import audit, workflow
from datasets.access import AccessRefused, Refusal, workspace_access
from tre_core.db import session_scope
from datasets.models import Project, ProjectStatus

TODAY = dt.date(2026, 11, 23)
FORM = workflow.ApplicationForm(
    slug="stroke-care", title="Stroke care pathways", lay_summary="How stroke patients are followed.",
    purpose="Describe pathways after a stroke.", public_interest="Better rehabilitation.",
    datasets=["hospital_stays", "claims"], members=["erin"],
)


def apply(url, form=FORM):
    with session_scope(url) as session:
        return workflow.apply_for_project(session, "alice", form)


def approve(url, steward="steward", starts_on=dt.date(2026, 11, 1)):
    with session_scope(url) as session:
        workflow.approve(session, steward, "stroke-care", approval_reference="CESREES-2026-0200",
                         starts_on=starts_on, ends_on=dt.date(2027, 10, 31))


def access(url, user="alice", project="stroke-care"):
    with session_scope(url) as session:
        return workspace_access(session, user, project, TODAY)


def test_an_application_gives_no_access_until_approved(catalogue_url):
    apply(catalogue_url)
    with pytest.raises(AccessRefused) as refused:
        access(catalogue_url)
    assert refused.value.reason is Refusal.PROJECT_NOT_STARTABLE
    approve(catalogue_url)
    assert [d.slug for d in access(catalogue_url).datasets] == ["claims", "hospital_stays"]
    assert [d.slug for d in access(catalogue_url, "erin").datasets] == ["claims", "hospital_stays"]


def test_bad_applications_say_everything_that_is_wrong_and_record_nothing(catalogue_url):
    bad = workflow.ApplicationForm(slug="cardio-risk", title="", lay_summary="x", purpose="x", public_interest="x",
                                   datasets=["imaging"], members=["ghost"],
                                   starts_on=dt.date(2027, 1, 1), ends_on=dt.date(2026, 1, 1))
    with pytest.raises(workflow.WorkflowError) as error:
        apply(catalogue_url, bad)
    message = str(error.value)
    for problem in ("exists already", "no dataset called imaging", "ghost not in the catalogue",
                    "end date is before", "title is empty"):
        assert problem in message


def test_only_stewards_decide(catalogue_url):
    apply(catalogue_url)
    with pytest.raises(workflow.PermissionDenied, match="not a data steward"):
        approve(catalogue_url, steward="bob")


def test_two_stewards_approving_at_once_yield_one_approval(catalogue_url):
    apply(catalogue_url)
    with session_scope(catalogue_url) as session:
        from datasets.models import Person

        session.add(Person(username="steward2", display_name="Second Steward", is_data_steward=True))
    outcomes, barrier = [], threading.Barrier(2)

    def decide(steward, starts_on):
        barrier.wait()
        try:
            approve(catalogue_url, steward, starts_on)
            outcomes.append("approved")
        except workflow.WorkflowError as exc:  # the loser is told, in words; anything else fails
            outcomes.append(str(exc))

    # different dates, so that only the status check, not a unique grant, can stop the second
    threads = [threading.Thread(target=decide, args=(s, dt.date(2026, 11, day)))
               for s, day in (("steward", 1), ("steward2", 2))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 2 and outcomes.count("approved") == 1, outcomes
    with session_scope(catalogue_url) as session:
        assert len(session.get(Project, "stroke-care").grants) == 2
        approvals = [e for e in audit.events(session) if e.action == "project.approved"]
        assert len(approvals) == 1


def test_refusal_closes_the_application_with_its_reason(catalogue_url):
    apply(catalogue_url)
    with session_scope(catalogue_url) as session:
        workflow.refuse(session, "steward", "stroke-care", reason="Purpose too broad for the data asked.")
    with session_scope(catalogue_url) as session:
        project = session.get(Project, "stroke-care")
        assert project.status is ProjectStatus.CLOSED and "too broad" in project.decision_reason
    with pytest.raises(workflow.WorkflowError, match="decided already"):
        approve(catalogue_url)


def test_suspend_revoke_and_remove_end_access(catalogue_url):
    with session_scope(catalogue_url) as session:
        workflow.revoke_grant(session, "steward", "cardio-risk", "claims", today=TODAY)
    assert [d.slug for d in access(catalogue_url, "alice", "cardio-risk").datasets] == ["hospital_stays"]
    with session_scope(catalogue_url) as session:
        workflow.remove_member(session, "steward", "cardio-risk", "erin")
    with pytest.raises(AccessRefused):
        access(catalogue_url, "erin", "cardio-risk")
    with session_scope(catalogue_url) as session:
        workflow.set_status(session, "steward", "cardio-risk", ProjectStatus.SUSPENDED, reason="audit")
    with pytest.raises(AccessRefused):
        access(catalogue_url, "alice", "cardio-risk")
    with session_scope(catalogue_url) as session:
        actions = [e.action for e in audit.events(session)]
        assert audit.verify(session).ok
    assert actions[-3:] == ["grant.revoked", "member.removed", "project.status"]


def test_a_failed_act_leaves_no_trace(catalogue_url):
    with pytest.raises(workflow.WorkflowError):
        with session_scope(catalogue_url) as session:
            workflow.add_member(session, "steward", "cardio-risk", "bob")
            workflow.add_member(session, "steward", "cardio-risk", "bob")  # twice: the whole act fails
    with session_scope(catalogue_url) as session:
        assert "bob" not in {m.username for m in session.get(Project, "cardio-risk").memberships}
        # the catalogue file's own members are added through the act too (one member.added row each)
        assert not [e for e in audit.events(session) if e.action == "member.added" and e.project == "cardio-risk" and e.details.get("user") == "bob"]


def test_no_steward_approves_an_application_they_are_part_of(catalogue_url):
    with session_scope(catalogue_url) as session:
        from datasets.models import Person

        session.get(Person, "erin").is_data_steward = True  # erin is a member of the application
    apply(catalogue_url)
    with pytest.raises(workflow.PermissionDenied, match="another data steward must decide"):
        approve(catalogue_url, "erin")
    with session_scope(catalogue_url) as session:
        assert session.get(Project, "stroke-care").status is ProjectStatus.REQUESTED
        assert not session.get(Project, "stroke-care").grants


def test_an_application_cannot_be_reactivated_into_a_project(catalogue_url):
    apply(catalogue_url)
    with session_scope(catalogue_url) as session, pytest.raises(workflow.WorkflowError, match="is an application"):
        workflow.set_status(session, "steward", "stroke-care", ProjectStatus.ACTIVE, reason="shortcut")
    with session_scope(catalogue_url) as session:
        assert session.get(Project, "stroke-care").status is ProjectStatus.REQUESTED


def test_an_approved_project_runs_for_the_period_approved_and_is_not_approved_twice(catalogue_url):
    apply(catalogue_url)
    approve(catalogue_url)
    with session_scope(catalogue_url) as session:
        project = session.get(Project, "stroke-care")
        assert (project.starts_on, project.ends_on) == (dt.date(2026, 11, 1), dt.date(2027, 10, 31))
    with pytest.raises(workflow.WorkflowError, match="decided already"):
        approve(catalogue_url, starts_on=dt.date(2026, 12, 1))


def test_an_application_that_no_longer_fits_the_newest_version_is_refused_in_the_persons_language(catalogue_url):
    apply(catalogue_url)
    with session_scope(catalogue_url) as session:  # as asked of an older version that had this column
        project = session.get(Project, "stroke-care")
        project.requested_specs = {"hospital_stays": None,
                                   "claims": {"tables": {"claims": ["patient_id", "gone_column"]}}}
    with pytest.raises(workflow.WorkflowError) as refused:
        approve(catalogue_url)
    english, french = str(refused.value), refused.value.said_in("fr")
    assert english.startswith("What the application asks of claims does not fit its newest version (The dataset")
    # the reason inside is French too, not the English one in a French sentence
    reason = french[french.index("(") + 1:french.rindex(")")]
    assert reason.startswith("Le jeu de données") and "dataset" not in french, french
    with session_scope(catalogue_url) as session:
        assert session.get(Project, "stroke-care").status == ProjectStatus.REQUESTED
