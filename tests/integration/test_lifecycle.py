"""Workspaces over time: a hub restart keeps them, the catalogue's decisions stop them within a
minute, a crash leaves no orphan, and idle ones are culled. Each uses its own hub, so restarting
or culling never disturbs the other tests."""

from __future__ import annotations

import os

import pytest
import requests

from datasets import audit
from datasets.models import AuditEvent, Membership, Project, ProjectStatus
from tre_core.settings import TRESettings
from tests.integration.conftest import Hub, catalogue, running_hub, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lifecycle_hub(docker_client):
    with running_hub(docker_client, settings={"TRE_RECONCILE_INTERVAL": "2"}) as hub:
        yield hub



def workspace_containers(hub: Hub, user: str, project: str):
    return hub.client.containers.list(all=True, filters={"label": [
        f"tre.instance={hub.instance}", f"tre.user={user}", f"tre.project={project}"]})


def test_hub_restart_keeps_a_running_server_reachable(lifecycle_hub):
    hub = lifecycle_hub
    alice = hub.login("alice")
    container = hub.start(alice, "alice", "cardio-risk")
    hub.stop_process()
    hub.start_process()
    page = alice.get(f"{hub.url}/user/alice/cardio-risk/lab")
    assert page.status_code == 200 and "jupyter-config-data" in page.text
    assert [c.id for c in workspace_containers(hub, "alice", "cardio-risk")] == [container.id]
    hub.stop(alice, "alice", "cardio-risk")
    wait_for(lambda: not workspace_containers(hub, "alice", "cardio-risk"), 30, "alice's workspace removed")


def test_suspending_a_project_stops_its_running_servers(lifecycle_hub):
    hub = lifecycle_hub
    bob = hub.login("bob")
    hub.start(bob, "bob", "diabetes-outcomes")
    with catalogue(hub) as session:
        session.get(Project, "diabetes-outcomes").status = ProjectStatus.SUSPENDED
    try:
        wait_for(lambda: not workspace_containers(hub, "bob", "diabetes-outcomes"), 60, "bob's workspace stopped")
        reply = hub.press_start(bob, "bob", "diabetes-outcomes")
        assert reply.status_code == 403 and "suspended" in reply.text
    finally:
        with catalogue(hub) as session:
            session.get(Project, "diabetes-outcomes").status = ProjectStatus.ACTIVE
    with catalogue(hub) as session:
        stops = [e for e in audit.events(session) if e.action == "workspace.stop" and e.actor == "reconciler"]
        assert stops[-1].details["reason"] == "project_not_startable" and stops[-1].project == "diabetes-outcomes"


def test_after_a_crash_the_reconciler_stops_what_the_catalogue_no_longer_allows(lifecycle_hub):
    hub = lifecycle_hub
    erin = hub.login("erin")
    hub.start(erin, "erin", "cardio-risk")
    hub.crash()
    with catalogue(hub) as session:
        session.delete(session.get(Membership, ("cardio-risk", "erin")))
    # and a container the hub never knew, as a crash in the middle of a start leaves behind
    image = hub.client.images.get(TRESettings().singleuser_image)
    stray = hub.client.containers.create(image.id, command=["sleep", "600"], labels={
        "tre.managed": "true", "tre.instance": hub.instance, "tre.component": "workspace",
        "tre.user": "ghost", "tre.project": "cardio-risk"})
    try:
        hub.start_process()
        wait_for(lambda: not workspace_containers(hub, "erin", "cardio-risk"), 60, "erin's workspace stopped")
        wait_for(lambda: not workspace_containers(hub, "ghost", "cardio-risk"), 60, "the stray container removed")
        refused = hub.press_start(erin, "erin", "cardio-risk")
        assert refused.status_code == 403 and "not a member of project cardio-risk" in refused.text
    finally:
        with catalogue(hub) as session:
            session.add(Membership(project_slug="cardio-risk", username="erin"))
        try:
            stray.remove(force=True)
        except Exception:
            pass


def test_a_link_planted_in_place_of_outputs_refuses_the_next_start_and_changes_nothing(lifecycle_hub):
    """The spawner prepares /project/outputs as root: a researcher who swaps it for a link to a host
    folder must not get that folder handed to the workspace user."""
    hub = lifecycle_hub
    victim = hub.home / "victim"  # stands for /etc: a host folder no workspace may own
    victim.mkdir()
    before = victim.stat()
    alice = hub.login("alice")
    container = hub.start(alice, "alice", "cardio-risk")
    planted = container.exec_run(["sh", "-c", f"rm -rf /project/outputs && ln -s {victim} /project/outputs"],
                                 user="1000:100")
    assert planted.exit_code == 0, planted.output
    hub.stop(alice, "alice", "cardio-risk")
    erin = hub.login("erin")
    try:
        refused = hub.press_start(erin, "erin", "cardio-risk")
        assert refused.status_code == 403 and "/project/outputs" in refused.text and "link" in refused.text
        after = victim.stat()
        assert (after.st_uid, after.st_gid, after.st_mode) == (before.st_uid, before.st_gid, before.st_mode)
        assert not workspace_containers(hub, "erin", "cardio-risk")
    finally:
        outputs = hub.home / "workspaces" / "cardio-risk" / "shared" / "outputs"
        outputs.unlink()
    hub.start(erin, "erin", "cardio-risk")  # the folder is made again, and the project works
    hub.stop(erin, "erin", "cardio-risk")


def test_the_audit_log_holds_every_start_and_stop_and_verifies(lifecycle_hub):
    """Each workspace container that started has a stop row naming it, and each start row the
    exact mounts it got."""
    with catalogue(lifecycle_hub) as session:
        events = list(audit.events(session))
        assert audit.verify(session).ok
    assert any(e.action == "login" for e in events)
    starts = [e for e in events if e.action == "workspace.start"]
    stops = {e.details.get("container") for e in events if e.action == "workspace.stop" and e.actor == "hub"}
    assert starts and all(any(m["target"] == "/project" for m in e.details["mounts"]) for e in starts)
    # the crash test's container was removed by the reconciler, which records its own row
    orphans = {e.details.get("container") for e in events if e.action == "workspace.stop" and e.actor == "reconciler"}
    unstopped = [e.details["container"] for e in starts if e.details["container"] not in stops | orphans]
    assert not unstopped, f"started and never recorded as stopped: {unstopped}"


def test_an_idle_server_is_culled(docker_client):
    hub = Hub(docker_client, settings={"TRE_IDLE_TIMEOUT": "10"}, scale=0.05)
    try:
        hub.start_process()
        bob = hub.login("bob")
        hub.start(bob, "bob", "diabetes-outcomes")
        wait_for(lambda: not workspace_containers(hub, "bob", "diabetes-outcomes"), 90, "the idle workspace culled")
        api = {"Authorization": f"token {_token(hub, bob)}"}
        wait_for(lambda: "diabetes-outcomes" not in requests.get(
            f"{hub.url}/hub/api/users/bob", headers=api).json()["servers"], 30, "the hub knows it stopped")
    finally:
        hub.close()


def _token(hub: Hub, session: requests.Session) -> str:
    from tests.integration.conftest import hub_xsrf

    return session.post(f"{hub.url}/hub/api/users/bob/tokens", json={"expires_in": 300},
                        headers={"X-XSRFToken": hub_xsrf(session), "Referer": f"{hub.url}/hub/token"}).json()["token"]


def test_revoking_one_grant_stops_the_workspace_that_mounts_it(lifecycle_hub):
    hub = lifecycle_hub
    alice = hub.login("alice")
    hub.start(alice, "alice", "cardio-risk")
    hub.tre("projects", "revoke", "cardio-risk", "claims", "--as", "steward")
    wait_for(lambda: not workspace_containers(hub, "alice", "cardio-risk"), 60, "alice's workspace stopped")
    container = hub.start(alice, "alice", "cardio-risk")
    try:
        listing = container.exec_run(["ls", "/data"], user="1000:100").output.decode().split()
        assert listing == ["hospital_stays"]
    finally:
        hub.stop(alice, "alice", "cardio-risk")


def test_an_extract_changed_since_its_build_is_not_mounted(lifecycle_hub):
    """Workspaces mount extracts, never datasets: an extract file changed after its build (its
    source datasets are checked against their manifests when it is built, tests/unit) is refused."""
    hub = lifecycle_hub
    data = hub.home / "extracts" / "diabetes-outcomes" / "beneficiaries@2024.1" / "part-0.parquet"
    original, before = data.read_bytes(), data.stat()
    data.write_bytes(original + b"\0")  # a file changed after the build (root ignores its 0444)
    try:
        bob = hub.login("bob")
        reply = bob.get(f"{hub.url}/hub/spawn/bob/diabetes-outcomes")
        assert reply.status_code == 403
        assert "Dataset beneficiaries failed its integrity check" in reply.text
        assert "its extract changed since it was built" in reply.text
        assert "part-0.parquet was changed" in reply.text and "Sam Steward" in reply.text
        assert not workspace_containers(hub, "bob", "diabetes-outcomes")
    finally:
        data.write_bytes(original)
        os.utime(data, ns=(before.st_atime_ns, before.st_mtime_ns))
    with catalogue(hub) as session:
        refusals = [e for e in audit.events(session) if e.action == "workspace.refused"]
        assert refusals[-1].details["reason"] == "dataset_integrity"


def test_hub_groups_follow_the_catalogue(lifecycle_hub):
    hub = lifecycle_hub
    for person in ("alice", "erin", "bob", "carol"):
        hub.login(person)
    admin = hub.login("admin")
    from tests.integration.conftest import hub_xsrf

    token = admin.post(f"{hub.url}/hub/api/users/admin/tokens", json={"expires_in": 300},
                       headers={"X-XSRFToken": hub_xsrf(admin), "Referer": f"{hub.url}/hub/token"}).json()["token"]

    def groups():
        reply = requests.get(f"{hub.url}/hub/api/groups", headers={"Authorization": f"token {token}"})
        return {g["name"]: sorted(g["users"]) for g in reply.json()}

    wait_for(lambda: groups().get("project-cardio-risk") == ["alice", "erin"]
             and groups().get("project-diabetes-outcomes") == ["bob"]
             and groups().get("output-checkers") == ["carol"], 30, "groups synced from the catalogue")


def test_an_approval_opens_a_workspace_and_a_revocation_closes_it(lifecycle_hub):
    from datasets import workflow

    hub = lifecycle_hub
    with catalogue(hub) as session:
        workflow.apply_for_project(session, "alice", workflow.ApplicationForm(
            slug="stroke-care", title="Stroke care pathways", lay_summary="How stroke patients are followed.",
            purpose="Pathways after a stroke.", public_interest="Better rehabilitation.", datasets=["hospital_stays"]))
    alice = hub.login("alice")
    assert alice.get(f"{hub.url}/hub/spawn/alice/stroke-care").status_code == 403  # not approved yet
    hub.tre("projects", "approve", "stroke-care", "--as", "steward", "--reference", "CESREES-2026-0300",
            "--from", "2026-01-01", "--until", "2030-12-31")
    container = hub.start(alice, "alice", "stroke-care")
    assert container.exec_run(["ls", "/data"], user="1000:100").output.decode().split() == ["hospital_stays"]
    hub.tre("projects", "revoke", "stroke-care", "hospital_stays", "--as", "steward")
    wait_for(lambda: not workspace_containers(hub, "alice", "stroke-care"), 60, "the workspace stopped")
    refused = hub.press_start(alice, "alice", "stroke-care")
    assert refused.status_code == 403 and "no dataset grant in force" in refused.text


def test_without_its_firewall_rules_no_workspace_starts(lifecycle_hub):
    hub = lifecycle_hub
    hub.tre("firewall", "remove")
    try:
        bob = hub.login("bob")
        refused = bob.get(f"{hub.url}/hub/spawn/bob/diabetes-outcomes")
        assert refused.status_code == 403 and "tre firewall install" in refused.text
        assert not workspace_containers(hub, "bob", "diabetes-outcomes")
    finally:
        hub.tre("firewall", "install")
    with catalogue(hub) as session:
        refusals = [e for e in audit.events(session) if e.action == "workspace.refused"]
        assert refusals[-1].details["reason"] == "firewall_missing"


def test_a_network_of_the_projects_name_made_another_way_is_not_used(lifecycle_hub):
    """A network that only carries the right name and label (made by hand, routed outwards) must
    not become a project's network: the workspace does not start."""
    hub = lifecycle_hub
    impostor = hub.client.networks.create(
        f"tre-{hub.instance}-diabetes-outcomes", driver="bridge", internal=False,
        labels={"tre.managed": "true", "tre.instance": hub.instance, "tre.component": "test-impostor"})
    try:
        bob = hub.login("bob")
        bob.get(f"{hub.url}/hub/spawn/bob/diabetes-outcomes")
        wait_for(lambda: "is not the one the TRE makes" in hub.log_tail(200), 60, "the start refused in the hub's log")
        assert not workspace_containers(hub, "bob", "diabetes-outcomes")
    finally:
        hub.wait_while_stopping(bob, "bob", "diabetes-outcomes")
        impostor.remove()
