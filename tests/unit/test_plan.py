"""The workspace plan of each demo project: mounts, modes, names, labels. Pure: no engine."""

from __future__ import annotations

import datetime as dt
from pathlib import Path, PurePosixPath

import pytest

from datasets.access import GrantedDataset, ProjectExtract, WorkspaceAccess, workspace_access
from tre_core.db import session_scope
from spawner import docker_adapter
from spawner.plan import ExtractNotReady, UnsafeStoragePath, make_workspace_plan
from tests.unit.extract_helpers import with_ready_extracts

EXTRACTS = Path("/srv/tre/extracts")
WORKSPACES = Path("/srv/tre/workspaces")


def plan_for(url, user, project, **overrides):
    with session_scope(url) as session:
        access = with_ready_extracts(workspace_access(session, user, project, dt.date(2026, 11, 23)))
    options = dict(instance="demo", image="tre/singleuser:latest", extracts_root=EXTRACTS, workspaces_root=WORKSPACES,
                   default_mem_limit="2G", default_cpu_limit=1.0)
    options.update(overrides)
    return make_workspace_plan(access, **options)


def mounts_of(plan):
    return {str(m.target): (str(m.source), "ro" if m.read_only else "rw") for m in plan.mounts}


def test_cardio_risk_plan_for_alice(catalogue_url):
    plan = plan_for(catalogue_url, "alice", "cardio-risk")
    assert mounts_of(plan) == {
        "/data/claims": ("/srv/tre/extracts/cardio-risk/claims@2024.1", "ro"),
        "/data/hospital_stays": ("/srv/tre/extracts/cardio-risk/hospital_stays@2024.1", "ro"),
        "/project": ("/srv/tre/workspaces/cardio-risk/shared", "rw"),
        "/home/alice": ("/srv/tre/workspaces/cardio-risk/homes/alice", "rw"),
    }
    assert plan.container_name.startswith("tre-demo-cardio-risk-alice-")
    assert plan.network.name == "tre-demo-cardio-risk" and plan.network.internal
    assert plan.env["HOME"] == "/home/alice" and plan.working_dir == PurePosixPath("/project")
    assert plan.labels["tre.project"] == "cardio-risk" and plan.labels["tre.user"] == "alice"
    assert plan.uid == 1000


def test_members_of_one_project_share_project_but_not_home(catalogue_url):
    alice, erin = (plan_for(catalogue_url, u, "cardio-risk") for u in ("alice", "erin"))
    assert mounts_of(alice)["/project"] == mounts_of(erin)["/project"]
    assert mounts_of(alice)["/home/alice"] != mounts_of(erin)["/home/erin"]
    assert alice.network == erin.network


def test_diabetes_outcomes_plan_for_bob(catalogue_url):
    plan = plan_for(catalogue_url, "bob", "diabetes-outcomes")
    assert {t: m for t, m in mounts_of(plan).items() if t.startswith("/data")} == {
        "/data/beneficiaries": ("/srv/tre/extracts/diabetes-outcomes/beneficiaries@2024.1", "ro"),
        "/data/claims": ("/srv/tre/extracts/diabetes-outcomes/claims@2024.1", "ro"),
    }
    assert mounts_of(plan)["/project"] == ("/srv/tre/workspaces/diabetes-outcomes/shared", "rw")
    assert plan.network.name == "tre-demo-diabetes-outcomes"


def test_projects_never_share_network_or_project_folder(catalogue_url):
    cardio = plan_for(catalogue_url, "alice", "cardio-risk")
    diabetes = plan_for(catalogue_url, "bob", "diabetes-outcomes")
    assert cardio.network.name != diabetes.network.name
    assert mounts_of(cardio)["/project"] != mounts_of(diabetes)["/project"]


def test_every_dataset_mount_is_read_only_and_every_other_mount_writable(catalogue_url):
    for user, project in (("alice", "cardio-risk"), ("bob", "diabetes-outcomes")):
        plan = plan_for(catalogue_url, user, project)
        for mount in plan.mounts:
            assert mount.read_only == str(mount.target).startswith("/data/")


def test_docker_volumes_carry_the_modes(catalogue_url):
    volumes = docker_adapter.volumes(plan_for(catalogue_url, "bob", "diabetes-outcomes"))
    assert volumes["/srv/tre/extracts/diabetes-outcomes/beneficiaries@2024.1"] == {"bind": "/data/beneficiaries",
                                                                                  "mode": "ro"}
    assert volumes["/srv/tre/workspaces/diabetes-outcomes/shared"] == {"bind": "/project", "mode": "rw"}
    assert not any("/srv/tre/data" in source or "hospital_stays" in source for source in volumes)


def test_project_limits_override_defaults(catalogue_url):
    from datasets.models import Project

    assert plan_for(catalogue_url, "alice", "cardio-risk").mem_limit == "2G"
    with session_scope(catalogue_url) as session:
        session.get(Project, "cardio-risk").mem_limit = "8G"
        session.get(Project, "cardio-risk").cpu_limit = 2.0
    plan = plan_for(catalogue_url, "alice", "cardio-risk")
    assert (plan.mem_limit, plan.cpu_limit) == ("8G", 2.0)


@pytest.mark.parametrize("path", [
    "/etc", "../other-store", "cardio-risk/../../etc", "claims",  # outside the project's extracts, or a dataset
    "diabetes-outcomes/claims@1",  # another project's extract of the same dataset
    "cardio-risk/.building-7", "cardio-risk/claims@2",  # half built; another version
    "cardio-risk/claims@1/..", "cardio-risk/claims@1/year=2022",
])
def test_only_the_projects_own_extract_of_each_dataset_is_mounted(path):
    extract = ProjectExtract(id=7, ready=True, path=PurePosixPath(path))
    access = WorkspaceAccess(
        username="alice", project="cardio-risk", project_title="t", mem_limit=None, cpu_limit=None,
        datasets=(GrantedDataset("claims", "1", PurePosixPath("claims"), dt.date(2027, 1, 1), extract=extract),),
    )
    with pytest.raises(UnsafeStoragePath):
        make_workspace_plan(access, instance="demo", image="i", extracts_root=EXTRACTS, workspaces_root=WORKSPACES,
                            default_mem_limit="2G", default_cpu_limit=1.0)


@pytest.mark.parametrize("extract", [None, ProjectExtract(id=7, ready=False, progress=40)])
def test_no_plan_while_an_extract_is_being_prepared(extract):
    access = WorkspaceAccess(
        username="alice", project="cardio-risk", project_title="t", mem_limit=None, cpu_limit=None,
        datasets=(GrantedDataset("claims", "1", PurePosixPath("claims"), dt.date(2027, 1, 1), extract=extract),),
    )
    assert access.preparing and access.preparing_progress == (extract.progress if extract else 0)
    with pytest.raises(ExtractNotReady):
        make_workspace_plan(access, instance="demo", image="i", extracts_root=EXTRACTS, workspaces_root=WORKSPACES,
                            default_mem_limit="2G", default_cpu_limit=1.0)


def test_the_workspace_labels_name_the_extracts_it_mounts(catalogue_url):
    from tre_core.labels import parse_extracts

    plan = plan_for(catalogue_url, "alice", "cardio-risk")
    assert parse_extracts(plan.labels["tre.extracts"]) == {"claims": 1, "hospital_stays": 2}


def test_ui_language_reaches_the_workspace(catalogue_url):
    assert plan_for(catalogue_url, "alice", "cardio-risk", ui_language="fr").env["TRE_UI_LANGUAGE"] == "fr"


def test_the_installations_read_limit_reaches_the_workspace(catalogue_url):
    assert plan_for(catalogue_url, "alice", "cardio-risk", read_max_bytes=123_456).env["TRE_READ_MAX_BYTES"] == "123456"
    assert plan_for(catalogue_url, "alice", "cardio-risk").env["TRE_READ_MAX_BYTES"] == str(5 * 1024**2)


def test_workspaces_are_hardened(catalogue_url):
    config = docker_adapter.host_config(plan_for(catalogue_url, "alice", "cardio-risk"), "172.30.0.1")
    assert config["cap_drop"] == ["ALL"]
    assert config["security_opt"] == ["no-new-privileges:true"]
    assert config["read_only"] is True and set(config["tmpfs"]) == {"/tmp"}
    assert config["pids_limit"] == 512 and config["memswap_limit"] == "2G"
    assert "privileged" not in config and "devices" not in config
    assert config["dns"] == ["172.30.0.1"]  # never the host's resolvers (CVE-2024-29018)


def test_bridge_names_fit_linux_and_share_the_installations_prefix(catalogue_url):
    from spawner.plan import bridge_prefix

    cardio = plan_for(catalogue_url, "alice", "cardio-risk").network.bridge
    diabetes = plan_for(catalogue_url, "bob", "diabetes-outcomes").network.bridge
    assert len(cardio) <= 15 and len(diabetes) <= 15 and cardio != diabetes
    assert cardio.startswith(bridge_prefix("demo")) and diabetes.startswith(bridge_prefix("demo"))
    other = plan_for(catalogue_url, "alice", "cardio-risk", instance="test-1").network.bridge
    assert not other.startswith(bridge_prefix("demo"))


def test_firewall_leaves_workspaces_only_the_hub_port():
    from hub import firewall

    rules = [" ".join(r) for r in firewall.rules("demo", 8081)]
    assert rules[-1] == "-j DROP"
    accepted = [r for r in rules if r.endswith("ACCEPT")]
    assert accepted == ["-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
                        "-p tcp --dport 8081 -m conntrack --ctstate NEW -j ACCEPT"]


def test_pip_uses_the_package_index_on_the_gateway_with_the_starts_token_and_no_other():
    from spawner.plan import package_index_env

    env = package_index_env("172.30.0.1", 8084, "tok3n")
    assert env["PIP_INDEX_URL"] == "http://workspace:tok3n@172.30.0.1:8084/simple/"
    assert env["PIP_TRUSTED_HOST"] == "172.30.0.1:8084" and env["TRE_PACKAGE_INDEX_URL"] == "http://172.30.0.1:8084"
    assert not any(k.startswith("PIP_EXTRA") for k in env)


def test_firewall_leaves_the_package_index_port_beside_the_hubs():
    from hub import firewall

    accepted = [" ".join(r) for r in firewall.rules("demo", 8081, 8084) if r[-1] == "ACCEPT"]
    assert accepted[1:] == ["-p tcp --dport 8081 -m conntrack --ctstate NEW -j ACCEPT",
                            "-p tcp --dport 8084 -m conntrack --ctstate NEW -j ACCEPT"]
    hooks = [" ".join(h) for h in firewall._hooks("demo", 8081, 8084)]
    assert hooks[1:] == [f"-p tcp --dport 8081 -j {firewall.hub_chain_name('demo')}",
                         f"-p tcp --dport 8084 -j {firewall.hub_chain_name('demo')}"]
