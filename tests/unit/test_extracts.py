"""Per-project extracts over the SNDS-shaped demo data at a tiny scale: grant specs, project
pseudonyms, linkage, opt-outs, atomic and resumable builds, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from sqlalchemy import func, select

from datasets import catalogue as cat
from datasets import workflow
from datasets.manifest import TreeChanged
from datasets.grant_spec import GrantSpec, SpecError, parse_spec, whole_dataset
from datasets.models import AuditEvent, DatasetVersion, Extract, ExtractStatus, Grant, OptOut, version_key
from datasets.schema import upgrade
from demo.commands import DEMO_CATALOGUE
from demo.snds import generate
from extracts import build, jobs, optouts, pseudonyms
from tre_core.db import session_scope
from tre_core.settings import TRESettings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def snds_data(tmp_path_factory) -> Path:
    """The demo's five datasets, written once for the whole run (20,000 claims rows, 556 people)."""
    root = tmp_path_factory.mktemp("snds") / "data"
    generate(root, rows=20_000)
    return root


@pytest.fixture
def tre(database_url: str, tmp_path: Path, snds_data: Path, monkeypatch) -> TRESettings:
    """A TRE with the demo catalogue loaded over the generated data, its extracts under tmp_path."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "data").symlink_to(snds_data)
    monkeypatch.setenv("TRE_HOME", str(home))
    monkeypatch.setenv("TRE_DATABASE_URL", database_url)
    monkeypatch.setenv("TRE_OPTOUT_BATCH_SECONDS", "0")
    upgrade(database_url)
    with session_scope(database_url) as session:
        cat.load_catalogue(session, cat.read_catalogue_file(DEMO_CATALOGUE), home / "data")
    return TRESettings()


def grant_of(session, project: str, dataset: str) -> Grant:
    return session.scalars(select(Grant).where(Grant.project_slug == project, Grant.dataset_slug == dataset)).one()


def built(settings: TRESettings, project: str, dataset: str) -> Extract:
    """Queue the grant's extract, build it, and return its row."""
    with session_scope(settings.catalogue_url) as session:
        extract_id = jobs.enqueue_for_grant(session, grant_of(session, project, dataset)).id
    build.run(extract_id)
    with session_scope(settings.catalogue_url) as session:
        return session.get(Extract, extract_id)


def read(settings: TRESettings, extract: Extract, table: str = ""):
    folder = settings.extracts_root / extract.path / table
    return duckdb.sql(f"SELECT * FROM read_parquet('{folder}/**/*.parquet', hive_partitioning = false)")


def raw(settings: TRESettings, dataset: str, table: str = ""):
    return duckdb.sql(f"SELECT * FROM read_parquet('{settings.data_root / dataset / table}/**/*.parquet', "
                      "hive_partitioning = false)")


def test_duckdb_pseudonym_is_the_hmac_of_the_person_key():
    key = bytes(range(32))
    ipad, opad = pseudonyms.pads(key)
    con = duckdb.connect()
    con.execute("CREATE TEMP TABLE hk AS SELECT ?::BLOB AS ipad, ?::BLOB AS opad", [ipad, opad])
    rows = con.execute(f"SELECT k, {pseudonyms.pseudonym_sql('k')} FROM (VALUES ('a1b2'), ('é'), ('')) v(k), hk").fetchall()
    assert rows and all(value == pseudonyms.pseudonym(key, k) and 0 <= value < 2**63 for k, value in rows)


def test_two_projects_get_disjoint_pseudonyms_for_the_same_people(tre):
    cardio, diabetes = built(tre, "cardio-risk", "claims"), built(tre, "diabetes-outcomes", "claims")
    ours = {r[0] for r in read(tre, cardio).select("person_id").fetchall()}
    theirs = {r[0] for r in read(tre, diabetes).select("person_id").fetchall()}
    people = raw(tre, "claims").aggregate("count(DISTINCT patient_id)").fetchall()[0][0]
    assert cardio.people == diabetes.people == len(ours) == len(theirs) == people > 100
    assert ours.isdisjoint(theirs)
    with session_scope(tre.catalogue_url) as session:
        assert jobs.for_grant(session, grant_of(session, "cardio-risk", "claims")).id == cardio.id
        assert build.verify(tre, session.get(Extract, cardio.id)) == tre.extracts_root / "cardio-risk" / "claims@2024.1"
        extra = tre.extracts_root / "cardio-risk" / "claims@2024.1" / "year=2022" / "extra.parquet"
        extra.parent.chmod(0o755)  # read-only for everyone but root; the test may run as another user
        extra.write_bytes(b"")
        with pytest.raises(TreeChanged, match="extra.parquet"):
            build.verify(tre, session.get(Extract, cardio.id))
        extra.unlink()
    # the person key is nowhere; the pseudonym is the project key's HMAC of it, the same in the
    # project's other dataset (so its sources join on it)
    assert "patient_id" not in read(tre, cardio).columns
    key = pseudonyms.project_key(tre.secrets_dir, "cardio-risk")
    expected = {pseudonyms.pseudonym(key, r[0]) for r in raw(tre, "claims").select("patient_id").distinct().fetchall()}
    assert ours == expected
    stays = {r[0] for r in read(tre, built(tre, "cardio-risk", "hospital_stays")).select("person_id").fetchall()}
    in_stays = {pseudonyms.pseudonym(key, r[0]) for r in raw(tre, "hospital_stays").select("patient_id").fetchall()}
    assert stays == in_stays and stays <= ours
    with session_scope(tre.catalogue_url) as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "extract.built")).all()
        assert {(e.project, e.details["grant"], e.details["root_hash"]) for e in events} >= {
            ("cardio-risk", grant_of(session, "cardio-risk", "claims").id, cardio.root_hash)}


def test_the_project_key_is_private(tre):
    built(tre, "cardio-risk", "hospital_stays")
    key = pseudonyms.key_path(tre.secrets_dir, "cardio-risk")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert not key.is_relative_to(tre.extracts_root) and not key.is_relative_to(tre.data_root)
    assert pseudonyms.project_key(tre.secrets_dir, "cardio-risk") == bytes.fromhex(key.read_text().strip())


def test_ungranted_columns_periods_and_people_are_absent(tre):
    spec = {"columns": ["care_date", "atc_code", "amount_paid"],
            "period": {"from": dt.date(2022, 3, 1), "until": dt.date(2022, 6, 30)},
            "criteria": [{"table": ".", "column": "atc_code", "op": "in", "value": ["A10BA02"]}]}
    with session_scope(tre.catalogue_url) as session:
        workflow.set_grant_spec(session, "steward", grant_of(session, "diabetes-outcomes", "claims").id, spec)
    extract = built(tre, "diabetes-outcomes", "claims")
    rows = read(tre, extract)
    assert rows.columns == ["person_id", "care_date", "atc_code", "amount_paid"]
    low, high, people = rows.aggregate("min(care_date), max(care_date), count(DISTINCT person_id)").fetchall()[0]
    assert dt.date(2022, 3, 1) <= low and high <= dt.date(2022, 6, 30)
    folder = tre.extracts_root / extract.path
    assert sorted(p.parent.relative_to(folder).as_posix() for p in folder.rglob("*.parquet")) == [
        f"year=2022/month={m:02d}" for m in range(3, 7)]
    # only people with a metformin dispensing in the period, but all their care in the period
    metformin = raw(tre, "claims").filter("care_date BETWEEN DATE '2022-03-01' AND DATE '2022-06-30' "
                                          "AND atc_code = 'A10BA02'").aggregate("count(DISTINCT patient_id)")
    assert people == extract.people == metformin.fetchall()[0][0] > 0
    assert rows.filter("atc_code IS DISTINCT FROM 'A10BA02'").aggregate("count(*)").fetchall()[0][0] > 0


def test_linked_cohort_joins_the_national_data_on_the_project_pseudonym(tre):
    with session_scope(tre.catalogue_url) as session:
        grant = workflow.add_grant(session, "steward", "cardio-risk", "cohort", starts_on=dt.date(2026, 1, 1),
                                   ends_on=dt.date(2028, 12, 31), approval_reference="CNIL-DR-2026-200",
                                   spec={"tables": {"cohort": ["inclusion_date", "arm"]}, "linkage": "linkage"})
        assert grant.spec["linkage"] == "linkage"
    cohort = built(tre, "cardio-risk", "cohort")
    in_cohort = raw(tre, "cohort", "cohort").aggregate("count(DISTINCT study_id)").fetchall()[0][0]
    found = raw(tre, "cohort", "linkage").aggregate("count(DISTINCT study_id)").fetchall()[0][0]
    assert (cohort.cohort_people, cohort.linked) == (in_cohort, found)
    assert 0.9 <= cohort.linkage_rate < 1
    rows = read(tre, cohort, "cohort")
    assert rows.columns == ["person_id", "inclusion_date", "arm"]
    claims = built(tre, "cardio-risk", "claims")
    linked = duckdb.sql(f"SELECT count(DISTINCT c.person_id) FROM read_parquet('{tre.extracts_root / cohort.path}/cohort/*.parquet') c "
                        f"JOIN read_parquet('{tre.extracts_root / claims.path}/**/*.parquet') k USING (person_id)").fetchall()[0][0]
    expected = duckdb.sql(f"SELECT count(DISTINCT l.patient_id) FROM read_parquet('{tre.data_root}/cohort/linkage/*.parquet') l "
                          f"JOIN read_parquet('{tre.data_root}/claims/**/*.parquet') k USING (patient_id)").fetchall()[0][0]
    assert linked == expected > 0


def test_opted_out_person_is_absent_from_new_extracts_and_after_rebuild_from_existing(tre):
    first = built(tre, "cardio-risk", "claims")
    person = raw(tre, "claims").select("patient_id").limit(1).fetchall()[0][0]
    key = pseudonyms.project_key(tre.secrets_dir, "cardio-risk")
    assert read(tre, first).filter(f"person_id = {pseudonyms.pseudonym(key, person)}").aggregate("count(*)").fetchall()[0][0]
    with session_scope(tre.catalogue_url) as session:
        assert optouts.add(session, "steward", [(person, dt.date(2026, 12, 1))], "test") == 1
        assert optouts.add(session, "steward", [(person, dt.date(2026, 12, 1))], "test") == 0  # once
        assert optouts.count(session) == 1
        assert session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "optout.added")) == 1
        rebuilt = jobs.rebuild_for_optouts(session)
        assert [e.spec_digest for e in rebuilt] == [first.spec_digest]
    build.run(rebuilt[0].id)
    fresh = built(tre, "diabetes-outcomes", "claims")
    with session_scope(tre.catalogue_url) as session:
        assert session.get(Extract, first.id).status is ExtractStatus.SUPERSEDED
        again = session.get(Extract, rebuilt[0].id)
        assert again.status is ExtractStatus.READY and again.path == first.path and again.people == first.people - 1
        assert jobs.rebuild_for_optouts(session) == []
    assert not read(tre, again).filter(f"person_id = {pseudonyms.pseudonym(key, person)}").aggregate("count(*)").fetchall()[0][0]
    theirs = pseudonyms.pseudonym(pseudonyms.project_key(tre.secrets_dir, "diabetes-outcomes"), person)
    assert not read(tre, fresh).filter(f"person_id = {theirs}").aggregate("count(*)").fetchall()[0][0]
    assert [p.name for p in (tre.extracts_root / "cardio-risk").iterdir() if p.name.startswith(".building")] == []


BAD_SPECS = [
    ({"tables": {"prescriptions": ["care_date"]}}, "tables", "prescriptions"),
    ({"columns": ["care_date", "diagnosis"]}, "tables", "diagnosis"),
    ({"columns": ["care_date"], "criteria": [{"table": ".", "column": "atc_code", "op": "like", "value": "A%"}]},
     "criteria", "like"),
    ({"columns": ["care_date"], "criteria": [{"table": ".", "column": "amount_paid", "op": ">", "value": "1; DROP"}]},
     "criteria", "amount_paid"),
    ({"columns": ["care_date"], "period": {"from": "2023-01-01", "until": "2022-01-01"}}, "period", "2022-01-01"),
]


@pytest.mark.parametrize("spec, field, named", BAD_SPECS)
def test_bad_spec_is_refused_in_both_languages_and_changes_nothing(tre, spec, field, named):
    with session_scope(tre.catalogue_url) as session:
        grant_id = grant_of(session, "diabetes-outcomes", "claims").id
        audit_rows = session.scalar(select(func.count()).select_from(AuditEvent))
    with pytest.raises(SpecError) as refused, session_scope(tre.catalogue_url) as session:
        workflow.set_grant_spec(session, "steward", grant_id, spec)
    assert refused.value.field == field and named in str(refused.value)
    assert refused.value.said_in("fr") != str(refused.value) and named in refused.value.said_in("fr")
    with session_scope(tre.catalogue_url) as session:
        assert session.get(Grant, grant_id).spec is None
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == audit_rows


def test_identifiers_and_birth_dates_need_a_justification(tre):
    with session_scope(tre.catalogue_url) as session:
        version = session.get(DatasetVersion, ("hospital_stays", "2024.1"))
        with pytest.raises(SpecError) as refused:
            parse_spec({"columns": ["stay_id", "admission_date"]}, version.tables)
        assert refused.value.field == "justification" and "stay_id" in str(refused.value)
        spec = parse_spec({"columns": ["stay_id", "admission_date"], "justification": "Readmission chains."},
                          version.tables)
        assert GrantSpec.from_json(spec.to_json()) == spec
        assert spec.describe() == {"variables": ["stay_id", "admission_date"], "period": None, "criteria": 0}
        people = session.get(DatasetVersion, ("beneficiaries", "2024.1"))
        with pytest.raises(SpecError, match="birth_year"):
            parse_spec({"columns": ["birth_year", "sex"]}, people.tables)
        assert whole_dataset(session.get(DatasetVersion, ("cohort", "2024.1")).tables).linkage == "linkage"


def test_catalogue_file_with_a_bad_spec_loads_nothing(tre, tmp_path):
    text = DEMO_CATALOGUE.read_text().replace(
        'approval_reference: "CNIL-DR-2026-121"}\n      - {dataset: beneficiaries',
        'approval_reference: "CNIL-DR-2026-121", spec: {columns: [care_date, no_such_column]}}\n'
        '      - {dataset: beneficiaries')
    bad = tmp_path / "catalogue.yaml"
    bad.write_text(text)
    with pytest.raises(cat.CatalogueFileError, match="no_such_column"), session_scope(tre.catalogue_url) as session:
        cat.load_catalogue(session, cat.read_catalogue_file(bad), tre.data_root)
    with session_scope(tre.catalogue_url) as session:
        assert grant_of(session, "diabetes-outcomes", "claims").spec is None
    good = tmp_path / "good.yaml"
    good.write_text(text.replace("no_such_column", "atc_code"))
    with session_scope(tre.catalogue_url) as session:
        cat.load_catalogue(session, cat.read_catalogue_file(good), tre.data_root)
    with session_scope(tre.catalogue_url) as session:
        assert grant_of(session, "diabetes-outcomes", "claims").spec["tables"] == {".": ["care_date", "atc_code"]}


def test_optout_file_with_a_bad_line_records_nothing(tre, tmp_path):
    listing = tmp_path / "optouts.csv"
    listing.write_text("person_key,objected_on\nabc123,2026-11-02\nJean Dupont,2026-11-03\n")
    with pytest.raises(optouts.OptOutError, match=":3:"):
        optouts.read_file(listing, dt.date.today())
    listing.write_text("abc123,2026-11-02\ndef456\n")
    rows = optouts.read_file(listing, dt.date(2026, 12, 5))
    assert rows == [("abc123", dt.date(2026, 11, 2)), ("def456", dt.date(2026, 12, 5))]


def test_build_killed_mid_way_leaves_no_extract_and_the_next_run_finishes_it(tre, monkeypatch):
    with session_scope(tre.catalogue_url) as session:
        extract_id = jobs.enqueue_for_grant(session, grant_of(session, "cardio-risk", "claims")).id
    building = tre.extracts_root / "cardio-risk" / f".building-{extract_id}"
    final = tre.extracts_root / "cardio-risk" / version_key("claims", "2024.1")
    child = subprocess.Popen([sys.executable, "-c", f"from extracts.build import run; run({extract_id})"], cwd=ROOT,
                             env={**os.environ, "TRE_EXTRACT_TEST_SLOW_PARTITION": "2"})
    try:
        for _ in range(600):  # until the first partition is written (the child waits after each)
            done = sorted(building.rglob("part-0.parquet"))
            if done or child.poll() is not None:
                break
            time.sleep(0.1)
        assert done, "the build wrote no partition"
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
    assert not final.exists()
    with session_scope(tre.catalogue_url) as session:
        assert session.get(Extract, extract_id).status is ExtractStatus.BUILDING
    with pytest.raises(build.BuildError, match="take-over"):
        build.run(extract_id)
    first = done[0].relative_to(building)
    inode = done[0].stat().st_ino
    monkeypatch.setenv("TRE_EXTRACT_STALE_SECONDS", "0")
    build.run(extract_id, take_over=True)
    assert not building.exists() and (final / first).stat().st_ino == inode  # kept, not written again
    with session_scope(tre.catalogue_url) as session:
        extract = session.get(Extract, extract_id)
        assert (extract.status, extract.progress) == (ExtractStatus.READY, 100)
    assert read(tre, extract).aggregate("count(*)").fetchall()[0][0] == raw(tre, "claims").aggregate("count(*)").fetchall()[0][0]


def test_the_tre_commands_record_objections_and_build_what_grants_need(tre, tmp_path):
    from typer.testing import CliRunner

    from tre_core.cli import app

    runner = CliRunner()
    person = raw(tre, "beneficiaries").select("patient_id").limit(1).fetchall()[0][0]
    listing = tmp_path / "objections.txt"
    listing.write_text(f"{person}\nabc123,2026-11-30\n")
    result = runner.invoke(app, ["optout", "import", str(listing), "--as", "steward"])
    assert result.exit_code == 0 and "2 new objections" in result.output, result.output
    result = runner.invoke(app, ["optout", "add", "Jean Dupont", "--as", "steward"])
    assert result.exit_code == 1 and "never a name" in result.output
    result = runner.invoke(app, ["optout", "add", "abc123", "--as", "alice"])
    assert result.exit_code == 1 and "not a data steward" in result.output
    assert "2 people on the opt-out register" in runner.invoke(app, ["optout", "count"]).output
    result = runner.invoke(app, ["extracts", "build"])
    assert result.exit_code == 0 and "4 extract(s) built" in result.output, result.output
    listed = runner.invoke(app, ["extracts", "list", "--project", "diabetes-outcomes", "--json"])
    assert listed.exit_code == 0 and listed.output.count('"ready"') == 2 and person not in listed.output
    with session_scope(tre.catalogue_url) as session:
        people = jobs.latest(session, "diabetes-outcomes", version_key("beneficiaries", "2024.1"))
        total = raw(tre, "beneficiaries").aggregate("count(*)").fetchall()[0][0]
        assert people.people == total - 1
    assert "0 extract(s) built" in runner.invoke(app, ["extracts", "build"]).output
    with session_scope(tre.catalogue_url) as session:
        grant = grant_of(session, "cardio-risk", "claims")
        workflow.set_grant_spec(session, "steward", grant.id, {"columns": ["care_date", "region"]})
        queued = jobs.enqueue_for_grant(session, grant).id
    result = runner.invoke(app, ["extracts", "build", str(queued)])
    assert result.exit_code == 0 and f"Extract {queued} is ready" in result.output, result.output
    status = runner.invoke(app, ["extracts", "status", str(queued), "--json"])
    assert '"ready"' in status.output and '"100%"' in status.output
    assert runner.invoke(app, ["extracts", "status", "999"]).exit_code == 1


def test_a_grant_removed_from_the_catalogue_file_leaves_its_extracts_on_record(tre, tmp_path):
    extract = built(tre, "diabetes-outcomes", "beneficiaries")
    text = DEMO_CATALOGUE.read_text()
    line = next(x for x in text.splitlines() if "{dataset: beneficiaries," in x)
    smaller = tmp_path / "catalogue.yaml"
    smaller.write_text(text.replace(line + "\n", ""))
    with session_scope(tre.catalogue_url) as session:
        cat.load_catalogue(session, cat.read_catalogue_file(smaller), tre.data_root)
    with session_scope(tre.catalogue_url) as session:
        kept = session.get(Extract, extract.id)
        assert kept.grant_id is None and kept.root_hash == extract.root_hash
        assert [e.dataset_version_id for e in jobs.enqueue_missing(session)] == [
            "claims@2024.1", "hospital_stays@2024.1", "claims@2024.1"]


def test_a_failed_build_is_not_queued_again_by_the_service_but_by_the_stewards_command(tre):
    with session_scope(tre.catalogue_url) as session:
        extract = jobs.enqueue_for_grant(session, grant_of(session, "diabetes-outcomes", "beneficiaries"))
        extract.status, extract.error = ExtractStatus.FAILED, "disk full"
    with session_scope(tre.catalogue_url) as session:
        again = [e.dataset_version_id for e in jobs.enqueue_missing(session)]
        assert "beneficiaries@2024.1" not in again  # the workspaces are refused with the failure meanwhile
    with session_scope(tre.catalogue_url) as session:
        retried = jobs.enqueue_missing(session, retry_failed=True)
        assert [e.dataset_version_id for e in retried] == ["beneficiaries@2024.1"]


def test_an_extract_queued_twice_is_built_once_and_replaces_nothing(tre):
    first = built(tre, "diabetes-outcomes", "beneficiaries")
    with session_scope(tre.catalogue_url) as session:  # a start and the service queueing at once
        grant = grant_of(session, "diabetes-outcomes", "beneficiaries")
        twin = jobs._new(session, grant, jobs.spec_of(session, grant).digest()).id
    build.run(twin)
    with session_scope(tre.catalogue_url) as session:
        assert session.get(Extract, twin).status is ExtractStatus.SUPERSEDED
        assert session.get(Extract, first.id).status is ExtractStatus.READY  # its workspaces keep it


def test_a_failed_opt_out_rebuild_waits_for_the_steward(tre):
    built(tre, "diabetes-outcomes", "beneficiaries")
    with session_scope(tre.catalogue_url) as session:
        session.add(OptOut(person_key="P-optout-test", objected_on=dt.date(2026, 1, 1),
                           recorded_at=dt.datetime.now(dt.UTC), recorded_by="steward", source="test"))
    with session_scope(tre.catalogue_url) as session:
        rebuild = jobs.rebuild_for_optouts(session)
        assert [e.dataset_version_id for e in rebuild] == ["beneficiaries@2024.1"]
        rebuild[0].status, rebuild[0].error = ExtractStatus.FAILED, "disk full"
    with session_scope(tre.catalogue_url) as session:
        assert jobs.rebuild_for_optouts(session) == []  # not every pass: the steward's command retries
        assert [e.dataset_version_id for e in jobs.rebuild_for_optouts(session, retry_failed=True)] == [
            "beneficiaries@2024.1"]


def test_a_run_cut_short_right_after_the_swap_never_republishes_the_previous_extract(tre, monkeypatch):
    """Killed between swapping the new extract in and removing the old one, the build folder holds
    the previous extract, someone who objected since among them: the run that takes over must build
    anew, not pass those partitions off as its own."""
    first = built(tre, "diabetes-outcomes", "beneficiaries")
    person = raw(tre, "beneficiaries").select("patient_id").limit(1).fetchall()[0][0]
    people = read(tre, first).aggregate("count(DISTINCT person_id)").fetchall()[0][0]
    with session_scope(tre.catalogue_url) as session:
        optouts.add(session, "steward", [(person, dt.date(2026, 12, 1))], "test")
    with session_scope(tre.catalogue_url) as session:
        [second] = jobs.rebuild_for_optouts(session)
        second_id = second.id
    real = build._exchange

    def swap_then_die(new, old):
        try:
            real(new, old)
        except OSError:  # a file system without RENAME_EXCHANGE: the fallback's two renames
            os.rename(old, old.with_name(f".superseded-{second_id}"))
            os.rename(new, old)
        raise SystemExit("killed right after the swap")

    monkeypatch.setattr(build, "_exchange", swap_then_die)
    with pytest.raises(SystemExit):
        build.run(second_id)
    monkeypatch.setattr(build, "_exchange", real)
    monkeypatch.setenv("TRE_EXTRACT_STALE_SECONDS", "0")
    build.run(second_id, take_over=True)
    with session_scope(tre.catalogue_url) as session:
        done = session.get(Extract, second_id)
        assert done.status is ExtractStatus.READY
        assert read(tre, done).aggregate("count(DISTINCT person_id)").fetchall()[0][0] == people - 1
        assert not any(p.name.startswith((".building-", ".superseded-"))
                       for p in (tre.extracts_root / "diabetes-outcomes").iterdir())


def test_a_dataset_changed_since_registration_is_never_extracted(tre):
    """The workspaces mount extracts only; a source file changed after its registration fails the
    build, which names the file, instead of reaching a project."""
    source = next((tre.data_root / "beneficiaries").rglob("*.parquet"))
    before = source.stat()
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))  # changed, as its stat tells
    try:
        with session_scope(tre.catalogue_url) as session:
            extract_id = jobs.enqueue_for_grant(session, grant_of(session, "diabetes-outcomes", "beneficiaries")).id
        with pytest.raises(build.BuildError, match=source.name):
            build.run(extract_id)
    finally:
        os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
    with session_scope(tre.catalogue_url) as session:
        extract = session.get(Extract, extract_id)
        assert extract.status is ExtractStatus.FAILED and source.name in extract.error
        assert not (tre.extracts_root / "diabetes-outcomes" / "beneficiaries@2024.1").exists()
