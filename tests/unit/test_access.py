"""THE access module: one answer to each "who may see what" question, from the catalogue's rows;
and the separation of duties of the workflow acts (issue 19, item 3)."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic import command
from sqlalchemy import select, text, update

from datasets import access, workflow
from datasets.models import MembershipRecord, Person, Project, ProjectStatus
from datasets.schema import alembic_config, upgrade
from tre_core.db import engine_for, session_scope

TODAY = dt.date(2026, 11, 23)


def test_member_projects_are_the_ones_in_force_today(catalogue_url):
    with session_scope(catalogue_url) as session:
        assert access.member_projects(session, "alice", TODAY) == {"cardio-risk"}
        assert access.member_projects(session, "carol", TODAY) == frozenset()
        session.execute(update(Project).where(Project.slug == "cardio-risk").values(ends_on=TODAY - dt.timedelta(days=1)))
        assert access.member_projects(session, "alice", TODAY) == frozenset()  # ended yesterday
        session.execute(update(Project).where(Project.slug == "cardio-risk")
                        .values(ends_on=None, status=ProjectStatus.SUSPENDED))
        assert access.member_projects(session, "alice", TODAY) == frozenset()  # suspended


def test_a_former_member_stays_tied_to_the_project(catalogue_url):
    with session_scope(catalogue_url) as session:
        workflow.remove_member(session, "steward", "cardio-risk", "erin")
    with session_scope(catalogue_url) as session:
        assert "cardio-risk" not in access.member_projects(session, "erin", TODAY)
        assert "cardio-risk" in access.projects_tied_to(session, "erin")
        record = session.scalars(select(MembershipRecord).where(MembershipRecord.username == "erin")).one()
        assert record.removed_by == "steward" and record.removed_at is not None


def test_an_applicant_is_tied_to_what_they_applied_for(catalogue_url):
    form = workflow.ApplicationForm(slug="stroke-care", title="Stroke", lay_summary="Stroke care.",
                                    purpose="Pathways.", public_interest="Rehabilitation.", datasets=["claims"])
    with session_scope(catalogue_url) as session:
        workflow.apply_for_project(session, "bob", form)
        assert "stroke-care" in access.projects_tied_to(session, "bob")
        assert "stroke-care" not in access.member_projects(session, "bob", TODAY)  # not approved yet


def test_checker_accreditation_counts_its_last_day(catalogue_url):
    with session_scope(catalogue_url) as session:
        until = session.get(Person, "carol").checker_accredited_until
        assert access.is_accredited_checker(session, "carol", until)
        assert not access.is_accredited_checker(session, "carol", until + dt.timedelta(days=1))
        assert not access.is_accredited_checker(session, "alice", TODAY)
        assert not access.is_accredited_checker(session, "nobody", TODAY)


@pytest.mark.parametrize("act", ["add_member", "add_grant"])
def test_a_steward_does_not_decide_on_a_project_they_belong_to(catalogue_url, act):
    with session_scope(catalogue_url) as session:
        session.get(Person, "alice").is_data_steward = True  # alice is a member of cardio-risk
    with session_scope(catalogue_url) as session, pytest.raises(workflow.PermissionDenied) as refused:
        if act == "add_member":
            workflow.add_member(session, "alice", "cardio-risk", "bob")
        else:
            workflow.add_grant(session, "alice", "cardio-risk", "lab_results", starts_on=TODAY,
                               ends_on=TODAY + dt.timedelta(days=30), approval_reference="CNIL-1")
    assert "nobody approves, grants or adds members to their own project" in str(refused.value)
    assert "un autre gestionnaire de données doit en décider" in refused.value.said_in("fr")


def test_a_steward_who_once_belonged_to_a_project_still_does_not_decide_on_it(catalogue_url):
    with session_scope(catalogue_url) as session:
        workflow.add_member(session, "steward", "diabetes-outcomes", "alice")
        session.get(Person, "alice").is_data_steward = True
    with session_scope(catalogue_url) as session:
        workflow.remove_member(session, "steward", "diabetes-outcomes", "alice")
    with session_scope(catalogue_url) as session, pytest.raises(workflow.PermissionDenied):
        workflow.add_member(session, "alice", "diabetes-outcomes", "erin")


def test_a_grant_without_approval_reference_is_refused(catalogue_url):
    with session_scope(catalogue_url) as session, pytest.raises(workflow.WorkflowError) as refused:
        workflow.add_grant(session, "steward", "cardio-risk", "lab_results", starts_on=TODAY,
                           ends_on=TODAY + dt.timedelta(days=30), approval_reference="  ")
    assert "cites its approval reference" in str(refused.value)
    assert "référence de son autorisation" in refused.value.said_in("fr")


def test_migration_0008_fills_the_history_from_memberships_and_the_audit_log(catalogue_url):
    with session_scope(catalogue_url) as session:
        workflow.add_member(session, "steward", "diabetes-outcomes", "erin")
        workflow.remove_member(session, "steward", "diabetes-outcomes", "erin")
    command.downgrade(alembic_config(catalogue_url), "0007")
    upgrade(catalogue_url)
    with session_scope(catalogue_url) as session:
        assert "diabetes-outcomes" in access.projects_tied_to(session, "erin")  # from the audit rows, once
        assert {"cardio-risk"} <= access.projects_tied_to(session, "alice")  # from the memberships
    with engine_for(catalogue_url).connect() as connection:
        removed = connection.execute(text("SELECT removed_by FROM membership_history WHERE username = 'erin' "
                                          "AND project_slug = 'diabetes-outcomes'")).scalar_one()
    assert removed == "steward"
