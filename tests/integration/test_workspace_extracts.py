"""Workspaces mount extracts, never datasets, proved in real workspaces of a hub of its own: two
projects granted the same dataset see the same people under pseudonyms that share nothing; a
grant narrowed to three columns and half a year stops the workspace that held more, and its next
start shows "your data is being prepared: N %" (in French here) before it opens on exactly that;
an opted-out person leaves the extract at its rebuild, and the workspace that held them stops."""

from __future__ import annotations

import json
import time

import duckdb
import pytest

from datasets import audit
from datasets.grant_spec import parse_spec
from datasets.models import DatasetVersion, Extract, ExtractStatus, Grant
from extracts.pseudonyms import key_path, pseudonym
from tests.integration.conftest import catalogue, hub_xsrf, running_hub, wait_for

pytestmark = pytest.mark.integration

PERIOD = ("2023-01-01", "2023-06-30")
NARROW = {"columns": ["patient_id", "care_date", "atc_code"], "period": {"from": PERIOD[0], "until": PERIOD[1]},
          "justification": "Dispensings in the first half of 2023, per person, for the readmission model."}


@pytest.fixture(scope="module")
def extracts_hub(docker_client):
    # builds slowed down a little per partition, so that a start sees them under way
    with running_hub(docker_client, scale=0.05, prebuilt_extracts=False, settings={
            "TRE_RECONCILE_INTERVAL": "2", "TRE_EXTRACTION_INTERVAL": "1", "TRE_OPTOUT_BATCH_SECONDS": "0",
            "TRE_EXTRACT_TEST_SLOW_PARTITION": "0.25"}) as hub:
        yield hub


def sql_in(container, query: str):
    """A query run with DuckDB inside the workspace, as the researcher; its rows as JSON."""
    code = f"import duckdb, json; print(json.dumps(duckdb.sql({query!r}).fetchall(), default=str))"
    result = container.exec_run(["python3", "-c", code], user="1000:100")
    assert result.exit_code == 0, result.output.decode(errors="replace")
    return json.loads(result.output.decode().strip().splitlines()[-1])


CLAIMS = "read_parquet('/data/claims/**/*.parquet')"


def columns_in(container, dataset: str = "claims") -> set[str]:
    return {row[0] for row in sql_in(container, f"select column_name from (describe select * from "
                                                f"read_parquet('/data/{dataset}/**/*.parquet'))")}


def raw_claims(hub, query: str):
    """The same question asked of the dataset itself, on the host (what no workspace sees)."""
    return duckdb.sql(query.replace("CLAIMS", f"read_parquet('{hub.home}/data/claims/**/*.parquet')")).fetchall()


def progress_messages(hub, session, user: str, project: str, timeout: float = 240) -> list[str]:
    """Press start, then read the spawn page's progress stream (as its JavaScript does) to its end."""
    reply = hub.press_start(session, user, project)
    assert reply.status_code == 200, reply.text[-2000:]
    stream = session.get(f"{hub.url}/hub/api/users/{user}/servers/{project}/progress", stream=True, timeout=timeout,
                         headers={"X-XSRFToken": hub_xsrf(session), "Referer": f"{hub.url}/hub/spawn-pending/{user}/{project}",
                                  "Accept": "text/event-stream"})
    assert stream.status_code == 200, stream.text
    messages = []
    for line in stream.iter_lines(decode_unicode=True):
        if line and line.startswith("data:"):
            event = json.loads(line[5:])
            messages.append(event.get("message", ""))
            if event.get("ready") or event.get("failed"):
                break
    stream.close()
    return messages


def workspace_gone(hub, user: str, project: str) -> bool:
    return not hub.client.containers.list(filters={"label": [
        f"tre.instance={hub.instance}", f"tre.user={user}", f"tre.project={project}"]})


def extract_of(hub, project: str, dataset: str) -> tuple[int, str]:
    with catalogue(hub) as session:
        ready = [e for e in session.query(Extract).filter_by(project_id=project, status=ExtractStatus.READY)
                 if e.dataset_slug == dataset]
        assert len(ready) == 1, [(e.id, e.status) for e in session.query(Extract).filter_by(project_id=project)]
        return ready[0].id, ready[0].path


def ready_ids(hub, project: str, dataset: str) -> set[int]:
    with catalogue(hub) as session:
        return {e.id for e in session.query(Extract).filter_by(project_id=project, status=ExtractStatus.READY)
                if e.dataset_slug == dataset}


def test_two_projects_see_the_same_people_under_pseudonyms_that_share_nothing(extracts_hub):
    hub = extracts_hub
    alice, bob = hub.login("alice"), hub.login("bob")
    cardio = hub.start(alice, "alice", "cardio-risk")
    diabetes = hub.start(bob, "bob", "diabetes-outcomes")
    people = [{row[0] for row in sql_in(c, f"select distinct person_id from {CLAIMS}")} for c in (cardio, diabetes)]
    raw_people = raw_claims(hub, "select count(distinct patient_id) from CLAIMS")[0][0]
    assert len(people[0]) == len(people[1]) == raw_people > 100
    assert not people[0] & people[1]
    # the rows are all there, keyed by a number: the database's person key is nowhere
    assert sql_in(cardio, f"select count(*) from {CLAIMS}")[0][0] == raw_claims(hub, "select count(*) from CLAIMS")[0][0]
    assert "patient_id" not in columns_in(cardio) and "person_id" in columns_in(cardio)
    # what is mounted is the project's own extract folder, never the dataset's
    for container, project in ((cardio, "cardio-risk"), (diabetes, "diabetes-outcomes")):
        sources = {m["Destination"]: m["Source"] for m in container.attrs["Mounts"] if m["Destination"].startswith("/data")}
        assert sources and all(s.startswith(f"{hub.home}/extracts/{project}/") for s in sources.values()), sources
        assert not any(s.startswith(f"{hub.home}/data") for s in sources.values())
    # the same person in the project's two datasets has one pseudonym: they join
    joined = sql_in(diabetes, f"select count(distinct c.person_id) from {CLAIMS} c join "
                              "read_parquet('/data/beneficiaries/**/*.parquet') b using (person_id)")[0][0]
    assert joined == len(people[1])


def test_a_narrowed_grant_stops_the_workspace_and_the_next_start_waits_for_exactly_what_is_granted(extracts_hub):
    hub = extracts_hub
    alice = hub.login("alice")
    hub.start(alice, "alice", "cardio-risk")
    old_extract, _ = extract_of(hub, "cardio-risk", "claims")
    with catalogue(hub) as session:
        grant = session.query(Grant).filter_by(project_slug="cardio-risk", dataset_slug="claims").one()
        version = session.get(DatasetVersion, (grant.dataset_slug, grant.dataset_version))
        grant.spec = parse_spec(NARROW, version.tables).to_json()
        audit.record(session, "steward", audit.AuditAction.GRANT_CHANGED, project="cardio-risk",
                     details={"dataset": "claims", "spec": grant.spec})
    def reconciler_stops() -> list[str]:
        with catalogue(hub) as session:
            return [e.details.get("reason", "") for e in audit.events(session)
                    if e.action == "workspace.stop" and e.actor == "reconciler" and e.details.get("user") == "alice"]

    # the reconciler records its stop once the hub has stopped the workspace
    wait_for(lambda: workspace_gone(hub, "alice", "cardio-risk") and reconciler_stops(), 60,
             "the reconciler to stop the workspace")
    reasons = reconciler_stops()
    assert any(r.startswith("extract_replaced:") and "claims" in r for r in reasons), reasons

    alice_fr = hub.login("alice", language="fr")
    messages = progress_messages(hub, alice_fr, "alice", "cardio-risk")
    assert any(m.startswith("Vos données sont en préparation : ") and m.endswith(" %") for m in messages), messages
    container = hub.container("alice", "cardio-risk")
    new_extract, path = extract_of(hub, "cardio-risk", "claims")
    assert new_extract != old_extract and container.labels["tre.extracts"].count(f"claims:{new_extract}") == 1

    columns = columns_in(container)
    assert {"person_id", "care_date", "atc_code"} <= columns
    assert not columns & {"patient_id", "amount_paid", "amount_reimbursed", "prescriber_specialty", "region",
                          "act_code"}, columns
    first, last = sql_in(container, f"select min(care_date), max(care_date) from {CLAIMS}")[0]
    assert PERIOD[0] <= first and last <= PERIOD[1], (first, last)
    rows = sql_in(container, f"select count(*) from {CLAIMS}")[0][0]
    assert rows == raw_claims(hub, f"select count(*) from CLAIMS where care_date between '{PERIOD[0]}' and '{PERIOD[1]}'")[0][0]
    # control: the dataset itself has those columns and other dates, which the workspace never sees
    assert raw_claims(hub, "select min(care_date) < date '2023-01-01', max(care_date) > date '2023-06-30', "
                           "count(amount_paid) > 0 from CLAIMS")[0] == (True, True, True)
    hub.stop(alice, "alice", "cardio-risk")


def test_a_start_while_the_extract_builds_shows_its_progress_in_english(extracts_hub):
    hub = extracts_hub
    alice = hub.login("alice")
    hub.wait_while_stopping(alice, "alice", "cardio-risk")
    with catalogue(hub) as session:
        grant = session.query(Grant).filter_by(project_slug="cardio-risk", dataset_slug="claims").one()
        version = session.get(DatasetVersion, (grant.dataset_slug, grant.dataset_version))
        grant.spec = parse_spec({**NARROW, "columns": ["patient_id", "care_date"]}, version.tables).to_json()
    messages = progress_messages(hub, alice, "alice", "cardio-risk")
    assert any(m.startswith("Your data is being prepared: ") and m.endswith(" %") for m in messages), messages
    assert columns_in(hub.container("alice", "cardio-risk")) & {"atc_code", "patient_id"} == set()
    hub.stop(alice, "alice", "cardio-risk")


def test_an_opted_out_person_is_absent_after_the_rebuild(extracts_hub):
    hub = extracts_hub
    bob = hub.login("bob")
    container = hub.start(bob, "bob", "diabetes-outcomes")
    before = {d: extract_of(hub, "diabetes-outcomes", d)[0] for d in ("beneficiaries", "claims")}
    person_key = raw_claims(hub, "select patient_id from CLAIMS order by patient_id limit 1")[0][0]
    key = bytes.fromhex(key_path(hub.home / "secrets", "diabetes-outcomes").read_text().strip())
    their_pseudonym = pseudonym(key, person_key)
    people = sql_in(container, f"select count(distinct person_id) from {CLAIMS}")[0][0]
    # control: the person is in the workspace's data now, under the project's pseudonym
    assert sql_in(container, f"select count(*) from {CLAIMS} where person_id = {their_pseudonym}")[0][0] > 0
    hub.tre("optout", "add", person_key, "--as", "steward")
    wait_for(lambda: workspace_gone(hub, "bob", "diabetes-outcomes"), 120,
             "a rebuild, then the reconciler stopping the workspace that holds the person")
    wait_for(lambda: all(ready_ids(hub, "diabetes-outcomes", d) - {before[d]} for d in before), 120,
             "both of the project's extracts rebuilt without the person")
    container = hub.start(bob, "bob", "diabetes-outcomes")
    assert sql_in(container, f"select count(*) from {CLAIMS} where person_id = {their_pseudonym}")[0][0] == 0
    assert sql_in(container, f"select count(distinct person_id) from {CLAIMS}")[0][0] == people - 1
    beneficiaries = "read_parquet('/data/beneficiaries/**/*.parquet')"
    assert sql_in(container, f"select count(*) from {beneficiaries} where person_id = {their_pseudonym}")[0][0] == 0
    hub.stop(bob, "bob", "diabetes-outcomes")


def test_the_project_keys_are_the_platforms_alone(extracts_hub):
    """Root's, in a folder only root opens; the attack suite (test_attacks.py) shows no workspace
    holds them."""
    hub = extracts_hub
    folder = hub.home / "secrets" / "extracts"
    assert folder.stat().st_mode & 0o777 == 0o700
    keys = sorted(folder.glob("*.key"))
    assert {k.stem for k in keys} >= {"cardio-risk", "diabetes-outcomes"}
    assert all(k.stat().st_mode & 0o777 == 0o600 and k.stat().st_uid == 0 for k in keys)
