"""What ``workspace_access`` says of each granted dataset's extract: the ready one for the grant's
current spec (kept while a rebuild runs), or how far the one being prepared is, or a refusal in
English and French when its build failed. The rows are written as the engine writes them."""

from __future__ import annotations

import datetime as dt
from pathlib import PurePosixPath

import pytest
from sqlalchemy import select

from datasets.access import AccessRefused, Refusal, grant_spec_of, workspace_access
from datasets.grant_spec import parse_spec
from datasets.messages import explain
from datasets.models import DatasetVersion, Extract, ExtractStatus, Grant, version_key
from tre_core.db import session_scope

TODAY = dt.date(2026, 11, 23)


def claims_of(session, project: str = "cardio-risk") -> tuple[Grant, DatasetVersion]:
    grant = session.scalars(select(Grant).where(Grant.project_slug == project, Grant.dataset_slug == "claims")).one()
    return grant, session.get(DatasetVersion, (grant.dataset_slug, grant.dataset_version))


def add_extract(session, grant: Grant, version: DatasetVersion, status: ExtractStatus, **values) -> Extract:
    extract = Extract(project_id=grant.project_slug, dataset_version_id=version_key(grant.dataset_slug, grant.dataset_version),
                      grant_id=grant.id, spec_digest=grant_spec_of(grant, version).digest(), status=status,
                      created_at=dt.datetime.now(dt.UTC), **values)
    session.add(extract)
    session.flush()
    return extract


def extract_of_claims(url: str, user: str = "alice", project: str = "cardio-risk"):
    with session_scope(url) as session:
        granted = {d.slug: d for d in workspace_access(session, user, project, TODAY).datasets}
    return granted["claims"].extract


def test_no_extract_asked_for_yet_is_being_prepared_from_zero(catalogue_url):
    with session_scope(catalogue_url) as session:
        access = workspace_access(session, "alice", "cardio-risk", TODAY)
    assert [d.extract for d in access.datasets] == [None, None]
    assert [d.slug for d in access.preparing] == ["claims", "hospital_stays"] and access.preparing_progress == 0
    assert all(d.grant_id for d in access.datasets)


def test_a_build_under_way_gives_its_progress_and_a_ready_one_its_folder(catalogue_url):
    with session_scope(catalogue_url) as session:
        grant, version = claims_of(session)
        building = add_extract(session, grant, version, ExtractStatus.BUILDING, progress=40)
    extract = extract_of_claims(catalogue_url)
    assert (extract.id, extract.ready, extract.progress) == (building.id, False, 40)
    with session_scope(catalogue_url) as session:
        session.get(Extract, building.id).status = ExtractStatus.READY
        session.get(Extract, building.id).path = "cardio-risk/claims@2024.1"
        session.get(Extract, building.id).root_hash = "ab" * 32
        grant, version = claims_of(session)
        # a rebuild (opt-outs) queued after it: the ready one serves until its successor is ready
        add_extract(session, grant, version, ExtractStatus.QUEUED)
    extract = extract_of_claims(catalogue_url)
    assert (extract.id, extract.ready, extract.path) == (building.id, True, PurePosixPath("cardio-risk/claims@2024.1"))
    with session_scope(catalogue_url) as session:
        access = workspace_access(session, "alice", "cardio-risk", TODAY)
    assert [d.slug for d in access.preparing] == ["hospital_stays"] and access.preparing_progress == 50


def test_an_extract_of_another_spec_or_project_is_not_this_grants(catalogue_url):
    with session_scope(catalogue_url) as session:
        grant, version = claims_of(session)
        add_extract(session, grant, version, ExtractStatus.READY, path="cardio-risk/claims@2024.1", root_hash="ab" * 32)
        # the steward narrows the grant: the whole-dataset extract no longer serves it
        grant.spec = parse_spec({"columns": ["value"]}, version.tables).to_json()
    assert extract_of_claims(catalogue_url) is None
    # and diabetes-outcomes' grant of the same dataset has its own
    assert extract_of_claims(catalogue_url, "bob", "diabetes-outcomes") is None


@pytest.mark.parametrize("language, text", [
    ("en", "The extract of dataset claims for project cardio-risk could not be built (disk full), so the workspace "
           "does not start. Ask a data steward (Sam Steward"),
    ("fr", "L’extraction du jeu de données claims pour le projet cardio-risk n’a pas pu être construite (disk full) : "
           "l’espace de travail ne démarre pas. Demandez à un gestionnaire de données (Sam Steward"),
])
def test_a_failed_build_refuses_the_start_and_says_to_ask_a_steward(catalogue_url, language, text):
    with session_scope(catalogue_url) as session:
        grant, version = claims_of(session)
        add_extract(session, grant, version, ExtractStatus.FAILED, error="disk full")
    with pytest.raises(AccessRefused) as refused, session_scope(catalogue_url) as session:
        workspace_access(session, "alice", "cardio-risk", TODAY)
    assert refused.value.reason is Refusal.EXTRACT_FAILED
    assert explain(refused.value, language).startswith(text), explain(refused.value, language)
