"""A workspace plan rendered as a Docker Swarm service: the walls it carries, in the docker SDK's
types and in the Engine API request they become. Pure: no engine (tests/integration/test_swarm.py
runs the same rendering on a real two-node swarm)."""

from __future__ import annotations

import dataclasses

import datetime as dt
from pathlib import Path, PurePosixPath

import pytest
from docker.types import ContainerSpec, EndpointSpec, Placement, TaskTemplate

from datasets.access import GrantedDataset, ProjectExtract, WorkspaceAccess
from spawner import swarm_adapter as swarm
from spawner.plan import make_workspace_plan, project_network

EXTRACTS = Path("/srv/tre/extracts")
WORKSPACES = Path("/srv/tre/workspaces")
SITE = swarm.SwarmSite()


def dataset(slug: str, version: str = "2024.1") -> GrantedDataset:
    return GrantedDataset(slug=slug, version=version, storage_path=PurePosixPath(slug), ends_on=dt.date(2030, 1, 1),
                          extract=ProjectExtract(id=1, ready=True, path=PurePosixPath(f"{{project}}/{slug}@{version}")))


def plan(*datasets: GrantedDataset, project: str = "cardio-risk", user: str = "alice", mem: str | None = None):
    datasets = tuple(dataclasses.replace(d, extract=dataclasses.replace(
        d.extract, path=PurePosixPath(str(d.extract.path).format(project=project)))) for d in datasets)
    access = WorkspaceAccess(username=user, project=project, project_title=project, datasets=datasets,
                             mem_limit=mem, cpu_limit=None)
    return make_workspace_plan(access, instance="demo", image="sha256:" + "ab" * 32, extracts_root=EXTRACTS,
                               workspaces_root=WORKSPACES, default_mem_limit="2G", default_cpu_limit=1.5,
                               pids_limit=256)


CARDIO = plan(dataset("claims"), dataset("hospital_stays", "2023.2"))


def request_body(workspace, site=SITE, nameserver="10.0.9.1") -> dict:
    """The TaskTemplate SwarmSpawner sends, built the way it builds it from our traits."""
    service = swarm.service_parameters(workspace, site, nameserver)
    spec = ContainerSpec(image=service.image, env=service.environment, **service.container)
    return TaskTemplate(container_spec=spec, placement=Placement(**service.placement), networks=[service.network],
                        **service.task)


def test_datasets_are_read_only_binds_and_project_and_home_read_write():
    mounts = {m["Target"]: m for m in request_body(CARDIO)["ContainerSpec"]["Mounts"]}
    assert {t: (m["Type"], m.get("Source"), m["ReadOnly"]) for t, m in mounts.items()} == {
        "/data/claims": ("bind", "/srv/tre/extracts/cardio-risk/claims@2024.1", True),
        "/data/hospital_stays": ("bind", "/srv/tre/extracts/cardio-risk/hospital_stays@2023.2", True),
        "/project": ("bind", "/srv/tre/workspaces/cardio-risk/shared", False),
        "/home/alice": ("bind", "/srv/tre/workspaces/cardio-risk/homes/alice", False),
        "/tmp": ("tmpfs", None, False),
    }
    assert mounts["/tmp"]["TmpfsOptions"] == {"SizeBytes": 2**30, "Mode": 0o1777}


def test_a_project_without_datasets_mounts_no_data_and_has_no_dataset_constraint():
    empty = plan(project="pilot")
    targets = [m["Target"] for m in request_body(empty)["ContainerSpec"]["Mounts"]]
    assert not [t for t in targets if t.startswith("/data")]
    assert swarm.placement(empty, SITE) == {"constraints": []}


def test_container_is_hardened():
    spec = request_body(CARDIO)["ContainerSpec"]
    assert spec["User"] == "1000:100"
    assert spec["ReadOnly"] is True
    assert spec["CapabilityDrop"] == ["ALL"]
    assert "CapabilityAdd" not in spec
    assert spec["Init"] is True
    assert spec["Dir"] == "/project"
    assert spec["Hostname"] == "cardio-risk"
    assert spec["Labels"]["tre.project"] == "cardio-risk" and spec["Labels"]["tre.user"] == "alice"
    assert spec["Labels"]["tre.datasets"] == "claims,hospital_stays"
    assert "TRE_DATASETS=claims,hospital_stays" in spec["Env"]


def test_unknown_names_go_to_a_nameserver_inside_the_project_network():
    """Never the node's own resolver, which would forward from the node (CVE-2024-29018)."""
    dns = request_body(CARDIO, nameserver="10.0.9.1")["ContainerSpec"]["DNSConfig"]
    assert dns["Nameservers"] == ["10.0.9.1"] and dns["Options"] == ["timeout:1", "attempts:1"]
    assert not dns.get("Search")


def test_limits_memory_cpu_and_processes_and_no_restart():
    task = request_body(plan(dataset("claims"), mem="3G"))
    assert task["Resources"]["Limits"] == {"NanoCPUs": 1_500_000_000, "MemoryBytes": 3 * 2**30, "Pids": 256}
    assert task["RestartPolicy"]["Condition"] == "none"


def test_one_constraint_per_dataset_at_its_granted_version():
    assert request_body(CARDIO)["Placement"]["Constraints"] == [
        "node.labels.tre.dataset.claims==2024.1",
        "node.labels.tre.dataset.hospital_stays==2023.2",
    ]


def test_site_prefix_and_extra_constraints():
    site = swarm.SwarmSite(dataset_label_prefix="hdh.data.", extra_constraints=("node.role==worker",))
    assert swarm.placement(CARDIO, site)["constraints"] == [
        "node.labels.hdh.data.claims==2024.1", "node.labels.hdh.data.hospital_stays==2023.2", "node.role==worker"]


@pytest.mark.parametrize("version", ["2024 1", "a==b", "x!=y", "", "-v"])
def test_a_version_that_cannot_be_a_label_is_refused_with_what_to_do(version):
    with pytest.raises(swarm.UnplaceableDataset, match="data steward renames it"):
        swarm.placement(plan(dataset("claims", version)), SITE)


def test_project_network_is_an_internal_attachable_encrypted_overlay():
    options = swarm.overlay_network_options(CARDIO.network, SITE)
    assert options["driver"] == "overlay" and options["scope"] == "swarm"
    assert options["internal"] is True and options["attachable"] is True
    assert options["options"] == {"encrypted": "true"}
    assert options["labels"]["tre.project"] == "cardio-risk" and options["labels"]["tre.managed"] == "true"
    assert swarm.overlay_network_options(CARDIO.network, swarm.SwarmSite(encrypted_network=False))["options"] == {}


def test_each_project_has_its_own_network_and_service_name():
    other = plan(dataset("lab_results"), project="diabetes-outcomes")
    assert request_body(CARDIO)["Networks"] == [{"Target": project_network("demo", "cardio-risk").name}]
    assert swarm.service_parameters(other, SITE, "10.0.8.1").network != swarm.service_parameters(CARDIO, SITE, "x").network
    assert swarm.service_parameters(other, SITE, "x").name != swarm.service_parameters(CARDIO, SITE, "x").name


def test_service_runs_the_pinned_image_and_carries_the_plans_labels():
    service = swarm.service_parameters(CARDIO, SITE, "10.0.9.1")
    assert EndpointSpec(**service.endpoint) == {"Mode": "dnsrr"}  # its name is its task, no port published
    assert service.image == "sha256:" + "ab" * 32
    assert service.labels == CARDIO.labels


@pytest.mark.parametrize("size", ["1x", "lots", ""])
def test_a_memory_limit_that_is_not_a_size_says_so(size):
    with pytest.raises(ValueError, match="not a number of bytes"):
        swarm.resources(plan(mem=size or " "))
