"""The demo workspace plans rendered as Kubernetes objects, checked against the API schema through
the official client's models, and the walls they carry. Pure: no cluster."""

from __future__ import annotations

import datetime as dt
from pathlib import Path, PurePosixPath

import pytest
from kubernetes.client import ApiClient

from datasets.access import WorkspaceAccess, workspace_access
from tre_core.db import session_scope
from spawner import kubernetes_adapter as k8s
from spawner.plan import make_workspace_plan
from tests.unit.extract_helpers import with_ready_extracts

EXTRACTS = Path("/srv/tre/extracts")
WORKSPACES = Path("/srv/tre/workspaces")
SITE = k8s.KubernetesSite(namespace="tre", workspaces_claim="tre-workspaces", datasets_claim="tre-datasets",
                          data_root=PurePosixPath(EXTRACTS))
ONE_CLAIM_SITE = SITE
OPTIONS = dict(instance="demo", image="tre/singleuser:latest", extracts_root=EXTRACTS, workspaces_root=WORKSPACES,
               default_mem_limit="2G", default_cpu_limit=1.0)


def plan_for(url, user, project):
    with session_scope(url) as session:
        access = with_ready_extracts(workspace_access(session, user, project, dt.date(2026, 11, 23)))
    return make_workspace_plan(access, **OPTIONS)


def round_trip(obj, kind: str) -> dict:
    """Serialise as the API server would receive it, read it back into the model class (which
    rejects unknown shapes and missing required fields) and check nothing was lost."""
    client = ApiClient()
    data = client.sanitize_for_serialization(obj)
    back = client._ApiClient__deserialize(data, kind)
    assert type(back).__name__ == kind
    assert client.sanitize_for_serialization(back) == data
    return data


def container(pod):
    [only] = pod.spec.containers
    return only


def mounts_by_path(pod) -> dict:
    return {m.mount_path: m for m in container(pod).volume_mounts}


def volumes_by_name(pod) -> dict:
    return {v.name: v for v in pod.spec.volumes}


def selects(selector, labels: dict[str, str]) -> bool:
    """Whether a LabelSelector matches a pod's labels (matchLabels; no policy here uses expressions)."""
    assert not selector.match_expressions
    return all(labels.get(k) == v for k, v in (selector.match_labels or {}).items())


@pytest.mark.parametrize("user,project", [("alice", "cardio-risk"), ("erin", "cardio-risk"),
                                          ("bob", "diabetes-outcomes")])
def test_demo_plans_render_objects_the_api_schema_accepts(catalogue_url, user, project):
    plan = plan_for(catalogue_url, user, project)
    data = round_trip(k8s.make_pod(plan, SITE), "V1Pod")
    assert data["spec"]["automountServiceAccountToken"] is False  # camelCase: the API's own names
    round_trip(k8s.make_pod(plan, ONE_CLAIM_SITE), "V1Pod")
    for policy in k8s.network_policies(plan, SITE):
        round_trip(policy, "V1NetworkPolicy")
    round_trip(k8s.make_claim("tre-datasets", "500Gi", SITE, read_only=True), "V1PersistentVolumeClaim")


def test_bad_shapes_fail_the_schema_round_trip():
    """The round trip is a real check: a pod without containers is refused by the model."""
    with pytest.raises(ValueError):
        ApiClient()._ApiClient__deserialize({"spec": {"volumes": []}}, "V1Pod")


def test_workspace_pod_is_hardened(catalogue_url):
    pod = k8s.make_pod(plan_for(catalogue_url, "alice", "cardio-risk"), SITE)
    ctx = container(pod).security_context
    assert (ctx.run_as_user, ctx.run_as_non_root, ctx.allow_privilege_escalation) == (1000, True, False)
    assert ctx.capabilities.drop == ["ALL"] and not ctx.capabilities.add
    assert ctx.read_only_root_filesystem is True and ctx.privileged is False
    assert ctx.seccomp_profile.type == "RuntimeDefault"
    assert pod.spec.security_context.run_as_non_root and pod.spec.security_context.seccomp_profile.type == "RuntimeDefault"
    assert pod.spec.automount_service_account_token is False and pod.spec.enable_service_links is False
    assert not pod.spec.host_network and not pod.spec.host_pid and not pod.spec.host_ipc
    assert all(v.host_path is None for v in pod.spec.volumes)
    limits = container(pod).resources.limits
    assert limits == {"memory": "2Gi", "cpu": "1.0"} and container(pod).resources.requests == limits
    tmp = volumes_by_name(pod)[mounts_by_path(pod)["/tmp"].name].empty_dir
    assert (tmp.medium, tmp.size_limit) == ("Memory", "1Gi")


def test_pod_carries_the_plans_env_labels_and_image(catalogue_url):
    plan = plan_for(catalogue_url, "alice", "cardio-risk")
    pod = k8s.make_pod(plan, SITE)
    assert container(pod).image == plan.image
    assert {e.name: e.value for e in container(pod).env} == plan.env
    assert pod.metadata.namespace == "tre" and pod.metadata.annotations == plan.labels
    assert pod.metadata.labels["tre.project"] == "cardio-risk" and pod.metadata.labels["tre.user"] == "alice"
    # the dataset list has commas, not allowed in a label value: kept as an annotation only
    assert "tre.datasets" not in pod.metadata.labels
    assert pod.metadata.labels[k8s.HUB_ACCESS_LABEL] == "true"


@pytest.mark.parametrize("user,project,datasets", [
    ("alice", "cardio-risk", {"claims", "hospital_stays"}),
    ("bob", "diabetes-outcomes", {"beneficiaries", "claims"}),
])
def test_exactly_the_projects_datasets_are_mounted_read_only(catalogue_url, user, project, datasets):
    pod = k8s.make_pod(plan_for(catalogue_url, user, project), SITE)
    mounts, volumes = mounts_by_path(pod), volumes_by_name(pod)
    data_mounts = {p: m for p, m in mounts.items() if p.startswith("/data")}
    assert set(data_mounts) == {f"/data/{slug}" for slug in datasets}
    for path, mount in data_mounts.items():
        claim = volumes[mount.name].persistent_volume_claim
        assert mount.read_only is True and claim.read_only is True
        assert (claim.claim_name, mount.sub_path) == ("tre-datasets", f"{project}/{path.removeprefix('/data/')}@2024.1")
    claimed = {v.persistent_volume_claim.claim_name for v in pod.spec.volumes if v.persistent_volume_claim}
    assert claimed == {"tre-datasets", "tre-workspaces"}
    assert all(m.read_only for p, m in mounts.items() if p not in ("/project", f"/home/{user}", "/tmp"))


def test_one_dataset_claim_mounts_each_dataset_by_subpath(catalogue_url):
    pod = k8s.make_pod(plan_for(catalogue_url, "alice", "cardio-risk"), ONE_CLAIM_SITE)
    mounts = mounts_by_path(pod)
    assert {p: (m.name, m.sub_path, m.read_only) for p, m in mounts.items() if p.startswith("/data")} == {
        "/data/claims": ("datasets", "cardio-risk/claims@2024.1", True),
        "/data/hospital_stays": ("datasets", "cardio-risk/hospital_stays@2024.1", True),
    }
    datasets = volumes_by_name(pod)["datasets"].persistent_volume_claim
    assert (datasets.claim_name, datasets.read_only) == ("tre-datasets", True)
    assert [v.name for v in pod.spec.volumes].count("datasets") == 1


def test_project_folder_is_shared_and_homes_are_not(catalogue_url):
    alice, erin = (k8s.make_pod(plan_for(catalogue_url, u, "cardio-risk"), SITE) for u in ("alice", "erin"))
    bob = k8s.make_pod(plan_for(catalogue_url, "bob", "diabetes-outcomes"), SITE)

    def where(pod, path):
        mount = mounts_by_path(pod)[path]
        return volumes_by_name(pod)[mount.name].persistent_volume_claim.claim_name, mount.sub_path, mount.read_only

    assert where(alice, "/project") == where(erin, "/project") == ("tre-workspaces", "cardio-risk/shared", False)
    assert where(bob, "/project") == ("tre-workspaces", "diabetes-outcomes/shared", False)
    assert where(alice, "/home/alice") == ("tre-workspaces", "cardio-risk/homes/alice", False)
    assert where(erin, "/home/erin")[1] == "cardio-risk/homes/erin"


def test_plan_without_datasets_mounts_none():
    access = WorkspaceAccess(username="carol", project="pilot", project_title="Pilot", datasets=(),
                             mem_limit=None, cpu_limit=None)
    pod = k8s.make_pod(make_workspace_plan(access, **OPTIONS), SITE)
    assert not [p for p in mounts_by_path(pod) if p.startswith("/data")]
    assert {v.persistent_volume_claim.claim_name for v in pod.spec.volumes if v.persistent_volume_claim} == {
        "tre-workspaces"}
    round_trip(pod, "V1Pod")


def test_a_site_without_the_extracts_claim_is_refused_with_what_to_do(catalogue_url):
    site = k8s.KubernetesSite(namespace="tre", workspaces_claim="tre-workspaces")
    with pytest.raises(k8s.SiteConfigurationError, match="no PersistentVolumeClaim for the extracts.*administrator"):
        k8s.make_pod(plan_for(catalogue_url, "alice", "cardio-risk"), site)


def test_no_site_can_mount_a_raw_dataset_claim():
    with pytest.raises(TypeError):  # per-dataset claims (whole datasets, every person's keys) are gone
        k8s.KubernetesSite(namespace="tre", workspaces_claim="tre-workspaces", dataset_claims={"claims": "c"})


def test_project_policy_admits_only_hub_and_proxy_and_reaches_only_the_hub_api(catalogue_url):
    pod = k8s.make_pod(plan_for(catalogue_url, "alice", "cardio-risk"), SITE)
    deny, allow = k8s.network_policies(plan_for(catalogue_url, "alice", "cardio-risk"), SITE)
    assert selects(deny.spec.pod_selector, pod.metadata.labels) and selects(allow.spec.pod_selector, pod.metadata.labels)
    assert deny.spec.policy_types == ["Ingress", "Egress"] and not deny.spec.ingress and not deny.spec.egress
    assert allow.spec.policy_types == ["Ingress", "Egress"]
    [ingress] = allow.spec.ingress
    assert [p.pod_selector.match_labels for p in ingress._from] == [dict(SITE.hub_pod_labels), dict(SITE.proxy_pod_labels)]
    assert [(p.protocol, p.port) for p in ingress.ports] == [("TCP", 8888)]
    [egress] = allow.spec.egress
    assert [p.pod_selector.match_labels for p in egress.to] == [dict(SITE.hub_pod_labels)]
    assert [(p.protocol, p.port) for p in egress.ports] == [("TCP", 8081)]  # no DNS, no other port
    assert all(p.ip_block is None and p.namespace_selector is None for p in ingress._from + egress.to)


def test_two_projects_policies_never_allow_each_others_pods(catalogue_url):
    plans = [plan_for(catalogue_url, "alice", "cardio-risk"), plan_for(catalogue_url, "bob", "diabetes-outcomes")]
    pods = [k8s.make_pod(p, SITE) for p in plans]
    policies = [k8s.project_policy(p, SITE) for p in plans]
    for i, policy in enumerate(policies):
        other = pods[1 - i]
        assert selects(policy.spec.pod_selector, pods[i].metadata.labels)
        assert not selects(policy.spec.pod_selector, other.metadata.labels)
        peers = policy.spec.ingress[0]._from + policy.spec.egress[0].to
        assert not any(selects(peer.pod_selector, pod.metadata.labels) for peer in peers for pod in pods)
    assert policies[0].metadata.name != policies[1].metadata.name


def test_docker_memory_units_become_the_same_bytes():
    assert [k8s.memory_quantity(v) for v in ("2G", "512m", "8g", "1024k", "1048576")] == [
        "2Gi", "512Mi", "8Gi", "1024Ki", "1048576"]
    with pytest.raises(ValueError, match="512m or 2G"):
        k8s.memory_quantity("two gigs")


def test_names_kubernetes_refuses_are_made_valid_and_stay_distinct():
    long = "tre-demo-a-very-long-project-name-for-cardiology-" + "x" * 40 + "-alice-0123456789"
    name = k8s.dns_label(long)
    assert len(name) <= 63 and name == name.lower() and k8s._DNS_LABEL.match(name)
    assert k8s.dns_label(long) != k8s.dns_label(long + "b")
    assert k8s.dns_label("tre-demo-cardio-risk-alice") == "tre-demo-cardio-risk-alice"
    with pytest.raises(ValueError, match="rename"):
        k8s.selector_labels("demo", "cardio risk!")


def test_claims_are_read_only_for_datasets_and_shared_for_workspaces():
    site = k8s.KubernetesSite(namespace="tre", workspaces_claim="tre-workspaces", storage_class="cephfs")
    data = k8s.make_claim("tre-datasets", "500Gi", site, read_only=True)
    work = k8s.make_claim("tre-workspaces", "1Ti", site, read_only=False)
    assert data.spec.access_modes == ["ReadOnlyMany"] and work.spec.access_modes == ["ReadWriteMany"]
    assert data.spec.storage_class_name == "cephfs" and work.spec.resources.requests == {"storage": "1Ti"}

