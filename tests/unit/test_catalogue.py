"""Who may start which workspace, as the catalogue decides it, and how catalogue files load."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from datasets import catalogue as cat
from datasets.access import AccessRefused, Refusal, workspace_access
from demo.commands import DEMO_CATALOGUE
from tre_core.db import session_scope
from datasets.messages import explain
from datasets.models import Grant, Project, ProjectStatus

TODAY = dt.date(2026, 11, 23)


def access(url, user, project, today=TODAY):
    with session_scope(url) as session:
        return workspace_access(session, user, project, today)


def refusal(url, user, project, today=TODAY) -> AccessRefused:
    with pytest.raises(AccessRefused) as caught:
        access(url, user, project, today)
    return caught.value


def test_members_get_exactly_their_projects_datasets(catalogue_url):
    assert [d.slug for d in access(catalogue_url, "alice", "cardio-risk").datasets] == ["claims", "hospital_stays"]
    assert [d.slug for d in access(catalogue_url, "erin", "cardio-risk").datasets] == ["claims", "hospital_stays"]
    assert [d.slug for d in access(catalogue_url, "bob", "diabetes-outcomes").datasets] == ["beneficiaries", "claims"]


def test_non_member_is_refused_and_told_whom_to_ask(catalogue_url):
    refused = refusal(catalogue_url, "alice", "diabetes-outcomes")
    assert refused.reason is Refusal.NOT_A_MEMBER
    assert "Bob Lefèvre" in explain(refused, "en")
    assert "Vous n’êtes pas membre du projet diabetes-outcomes" in explain(refused, "fr")


def test_unknown_project_and_default_server_are_refused(catalogue_url):
    assert refusal(catalogue_url, "alice", "no-such-project").reason is Refusal.NOT_A_PROJECT
    assert refusal(catalogue_url, "alice", "").reason is Refusal.NOT_A_PROJECT


def test_checker_who_is_not_a_member_gets_nothing(catalogue_url):
    assert refusal(catalogue_url, "carol", "cardio-risk").reason is Refusal.NOT_A_MEMBER


def test_grants_count_only_between_their_dates(catalogue_url):
    with session_scope(catalogue_url) as session:
        grant = session.scalars(
            select(Grant).where(Grant.project_slug == "cardio-risk", Grant.dataset_slug == "claims")
        ).one()
        grant.ends_on = dt.date(2026, 10, 31)
    assert [d.slug for d in access(catalogue_url, "alice", "cardio-risk").datasets] == ["hospital_stays"]
    # on its last day a grant is still in force
    assert len(access(catalogue_url, "alice", "cardio-risk", dt.date(2026, 10, 31)).datasets) == 2


def test_no_grant_in_force_refuses_the_workspace(catalogue_url):
    refused = refusal(catalogue_url, "bob", "diabetes-outcomes", dt.date(2029, 1, 1))
    # the project itself ended first, which is what a person must hear
    assert refused.reason is Refusal.PROJECT_ENDED
    assert "2028-12-31" in explain(refused, "en")
    with session_scope(catalogue_url) as session:
        session.get(Project, "diabetes-outcomes").ends_on = None
    assert refusal(catalogue_url, "bob", "diabetes-outcomes", dt.date(2029, 1, 1)).reason is Refusal.NO_DATASET_IN_FORCE


def test_suspended_project_cannot_start(catalogue_url):
    with session_scope(catalogue_url) as session:
        session.get(Project, "cardio-risk").status = ProjectStatus.SUSPENDED
    refused = refusal(catalogue_url, "alice", "cardio-risk")
    assert refused.reason is Refusal.PROJECT_NOT_STARTABLE
    assert "suspended" in explain(refused, "en")


def test_loading_twice_changes_nothing(catalogue_url, tmp_path):
    with session_scope(catalogue_url) as session:
        counts = cat.load_catalogue(session, cat.read_catalogue_file(DEMO_CATALOGUE), tmp_path / "data")
        assert counts == {"people": 7, "datasets": 5, "projects": 2}
        assert len(session.scalars(select(Grant)).all()) == 4
    assert [d.slug for d in access(catalogue_url, "alice", "cardio-risk").datasets] == ["claims", "hospital_stays"]


def test_dataset_files_are_fingerprinted(catalogue_url):
    from datasets.models import Dataset

    with session_scope(catalogue_url) as session:
        claims = session.get(Dataset, "claims")
        assert claims.row_count == 2
        assert list(claims.file_hashes) == ["_DATASET.md", "claims.parquet"]
        assert len(claims.file_hashes["claims.parquet"]) == 64
        assert {c["name"]: c["identifier"] for c in claims.columns}["patient_id"] == "direct"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("projects: [", "not valid YAML"),
        ("projects:\n  - slug: Bad Slug\n    title: x\n    principal_investigator: y\n", "projects.0.slug"),
        ("people: []\nprojects:\n  - slug: p-one\n    title: x\n    principal_investigator: y\n"
         "    members: [{username: ghost}]\n", "member ghost is not listed under people"),
        ("datasets:\n  - {slug: d-one, title: t, data_controller: c, sensitivity: s, version: '1',"
         " storage_path: ../etc}\n", "inside the data root"),
        ("colour: blue\n", "colour: Extra inputs are not permitted"),
        ("people:\n  - {username: ann, display_name: A}\n  - {username: ann, display_name: B}\n",
         "person ann is listed twice"),
        ("projects:\n  - {slug: p-one, title: x, principal_investigator: y}\n"
         "  - {slug: p-one, title: z, principal_investigator: y}\n", "project p-one is listed twice"),
        ("projects:\n  - {slug: p-one, title: x, principal_investigator: y, starts_on: 2027-01-01,"
         " ends_on: 2026-01-01}\n", "ends \\(2026-01-01\\) before it starts"),
        ("people:\n  - {username: zoe, display_name: Z, roles: [output_checker],"
         " checker_accredited_until: 2020-01-01}\n", "accreditation ended on 2020-01-01"),
        ("projects:\n  - {slug: p-one, title: x, principal_investigator: y, status: active}\n",
         "cites its approval"),
        ("people:\n  - {username: bob, display_name: B}\ndatasets:\n  - {slug: d-one, title: t, data_controller: c,"
         " sensitivity: s, version: '1', storage_path: d}\nprojects:\n  - slug: p-one\n    title: x\n"
         "    principal_investigator: y\n    grants: [{dataset: d-one, starts_on: 2026-01-01, ends_on: 2027-01-01,"
         " approved_by: bob, approval_reference: R}]\n", "approved by bob, who is not a data steward"),
        ("projects:\n  - {slug: p-one, title: x, principal_investigator: y, mem_limit: lots}\n",
         "projects.0.mem_limit"),
    ],
)
def test_bad_catalogue_files_say_what_is_wrong(tmp_path: Path, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(cat.CatalogueFileError, match=expected) as caught:
        cat.read_catalogue_file(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("how", ["folder_links_out", "file_is_a_link"])
def test_a_dataset_whose_files_lead_out_of_the_data_root_is_refused(catalogue_url, tmp_path, how):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("patient_id\n1\n")
    data = tmp_path / "data"
    if how == "folder_links_out":
        (data / "evil").symlink_to(outside)
    else:
        (data / "evil").mkdir()
        (data / "evil" / "secret.csv").symlink_to(outside / "secret.csv")
    catalogue = cat.CatalogueFile.model_validate({"datasets": [
        {"slug": "evil", "title": "t", "data_controller": "c", "sensitivity": "s", "version": "1", "storage_path": "evil"}]})
    with pytest.raises(cat.CatalogueFileError, match="outside the data root|is a symbolic link"):
        with session_scope(catalogue_url) as session:
            cat.load_catalogue(session, catalogue, data)
    with session_scope(catalogue_url) as session:
        assert session.get(cat.Dataset, "evil") is None


def test_a_failed_load_leaves_the_catalogue_as_it_was(catalogue_url, tmp_path):
    broken = cat.read_catalogue_file(DEMO_CATALOGUE)
    broken.projects[0].title = "Changed title"
    broken.datasets[0].storage_path = "missing-folder"
    with pytest.raises(cat.CatalogueFileError, match="no files at"):
        with session_scope(catalogue_url) as session:
            cat.load_catalogue(session, broken, tmp_path / "data")
    with session_scope(catalogue_url) as session:
        assert session.get(Project, "cardio-risk").title == "Cardiovascular risk after hospital stays"


def test_a_grant_is_for_the_version_it_names(catalogue_url, tmp_path):
    import pandas as pd

    from datasets import versions, workflow
    from datasets.models import Dataset, DatasetVersion, VersionStatus

    data = tmp_path / "data"
    (data / "beneficiaries-2027").mkdir()
    pd.DataFrame({"patient_id": ["a", "b", "c"], "value": [1, 2, 3]}).to_parquet(data / "beneficiaries-2027" / "p.parquet")
    new = versions.manifest_of(data, "beneficiaries-2027")
    with session_scope(catalogue_url) as session:
        old = session.get(Dataset, "beneficiaries").version
        workflow.register_dataset(session, "steward", Dataset(
            slug="beneficiaries", title="Beneficiaries", data_controller="c", sensitivity="s", version="2027.1",
            storage_path="beneficiaries-2027", columns=[]), new, data)
        assert [v.version for v in session.get(Dataset, "beneficiaries").versions] == [old, "2027.1"]
    # the new version registers beside the old one; the project keeps the version it was granted
    granted = access(catalogue_url, "bob", "diabetes-outcomes").datasets
    assert [(d.slug, d.version, str(d.storage_path)) for d in granted][0] == ("beneficiaries", old, "beneficiaries")
    with session_scope(catalogue_url) as session:
        workflow.add_grant(session, "steward", "diabetes-outcomes", "beneficiaries", starts_on=TODAY,
                           ends_on=TODAY + dt.timedelta(days=365), approval_reference="CNIL-DR-2027-001")
        versions.retire(session, "steward", "beneficiaries", old)
        assert session.get(DatasetVersion, ("beneficiaries", old)).status is VersionStatus.RETIRED
    granted = access(catalogue_url, "bob", "diabetes-outcomes").datasets
    assert [(d.slug, d.version, str(d.storage_path)) for d in granted] == [
        ("beneficiaries", "2027.1", "beneficiaries-2027"), ("claims", granted[1].version, "claims")]
    assert granted[0].root_hash == new.root_hash and len(granted[0].files) == 1


def test_a_suspended_version_refuses_the_start_naming_the_stewards(catalogue_url):
    from datasets import versions

    with session_scope(catalogue_url) as session:
        versions.suspend(session, "scrubber", "claims", "2024.1", "claims.parquet does not match its registered sha256")
    with pytest.raises(AccessRefused) as refused:
        access(catalogue_url, "bob", "diabetes-outcomes")
    assert refused.value.reason is Refusal.DATASET_SUSPENDED
    assert "Sam Steward" in explain(refused.value, "en") and "suspendu" in explain(refused.value, "fr")
