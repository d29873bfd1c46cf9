"""Renders a WorkspacePlan as Kubernetes objects: the only module here that knows Kubernetes' shapes.

Pure functions from a plan (plus the site's ``KubernetesSite``) to the official ``kubernetes``
client's models, in the manner of KubeSpawner's ``objects.py``: nothing here talks to a cluster,
so the walls (read-only dataset claims, hardening, network policies) are unit-tested against the
API schema. The same walls as ``docker_adapter``: only the project's datasets, each read-only;
``/project`` shared by the project; a home per user and project; no route anywhere but the hub.

Kubernetes has no per-pod process limit in the pod spec: the plan's ``pids_limit`` is enforced by
the kubelet's ``podPidsLimit`` (see the README's "Running on Kubernetes").
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from kubernetes.client import (
    V1Capabilities,
    V1Container,
    V1ContainerPort,
    V1EmptyDirVolumeSource,
    V1EnvVar,
    V1LabelSelector,
    V1NetworkPolicy,
    V1NetworkPolicyEgressRule,
    V1NetworkPolicyIngressRule,
    V1NetworkPolicyPeer,
    V1NetworkPolicyPort,
    V1NetworkPolicySpec,
    V1ObjectMeta,
    V1PersistentVolumeClaim,
    V1PersistentVolumeClaimSpec,
    V1PersistentVolumeClaimVolumeSource,
    V1Pod,
    V1PodSecurityContext,
    V1PodSpec,
    V1ResourceRequirements,
    V1SeccompProfile,
    V1SecurityContext,
    V1Volume,
    V1VolumeMount,
    V1VolumeResourceRequirements,
)

from spawner.plan import Mount, WorkspacePlan
from tre_core import labels as tre_labels

# Z2JH's hub NetworkPolicy admits pods carrying this label to the hub's API port.
HUB_ACCESS_LABEL = "hub.jupyter.org/network-access-hub"
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Docker's memory units are binary (``2G`` is 2 GiB); Kubernetes' ``G`` is decimal, ``Gi`` binary.
_DOCKER_MEMORY = re.compile(r"^(\d+)([bkmg]?)b?$", re.IGNORECASE)
_BINARY_SUFFIX = {"": "", "b": "", "k": "Ki", "m": "Mi", "g": "Gi"}
WORKSPACE_CONTAINER = "notebook"


class SiteConfigurationError(ValueError):
    """The site does not say where something the plan needs is stored; an administrator fixes it."""


@dataclass(frozen=True)
class KubernetesSite:
    """Where this installation's workspaces live in the cluster, chosen once by an administrator.

    A workspace's data is its project's extracts, read-only subPaths
    (``<project>/<dataset>@<version>``) of the one claim holding the extracts root
    (``datasets_claim``, laid out as ``TRE_EXTRACTS_ROOT`` under ``data_root``); no claim of a raw
    dataset is ever mounted (a per-dataset claim would hold every person's keys). Homes and project folders are
    subPaths of ``workspaces_claim``, laid out as under the plan's ``writable_root``.
    """

    namespace: str
    workspaces_claim: str
    datasets_claim: str | None = None
    data_root: PurePosixPath = PurePosixPath("/srv/tre/extracts")
    storage_class: str | None = None
    # Zero to JupyterHub's labels for its hub and proxy pods.
    hub_pod_labels: Mapping[str, str] = field(
        default_factory=lambda: {"app": "jupyterhub", "component": "hub"})
    proxy_pod_labels: Mapping[str, str] = field(
        default_factory=lambda: {"app": "jupyterhub", "component": "proxy"})
    hub_api_port: int = 8081
    workspace_port: int = 8888


def memory_quantity(docker_limit: str) -> str:
    """Docker's ``2G`` (2 GiB) as Kubernetes' ``2Gi``: the same bytes, never 7% less."""
    match = _DOCKER_MEMORY.match(docker_limit.strip())
    if not match:
        raise ValueError(f"memory limit {docker_limit!r} is not of the form 512m or 2G; correct the project's limit")
    return f"{match.group(1)}{_BINARY_SUFFIX[match.group(2).lower()]}"


def dns_label(name: str) -> str:
    """A name Kubernetes accepts for a pod or volume (63 characters, lower case, ``-``), kept
    unique by a hash of the original when it had to change."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    if cleaned == name and len(name) <= 63:
        return name
    tag = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{cleaned[:54].rstrip('-')}-{tag}"


def _is_label_value(value: str) -> bool:
    return len(value) <= 63 and bool(_LABEL_VALUE.match(value))


def selector_labels(instance: str, project: str) -> dict[str, str]:
    """The labels the project's NetworkPolicy selects its workspace pods by."""
    for value in (instance, project):
        if not _is_label_value(value):
            raise ValueError(f"{value!r} cannot be a Kubernetes label value; rename the instance or project")
    return tre_labels.object_labels(instance, tre_labels.WORKSPACE, project=project)


def pod_metadata(plan: WorkspacePlan, site: KubernetesSite) -> V1ObjectMeta:
    """The plan's labels: those Kubernetes accepts as label values become labels (selectable);
    all are annotations too, since the dataset list and image digest are not valid label values."""
    instance = plan.labels[tre_labels.INSTANCE]
    labels = {key: value for key, value in plan.labels.items() if _is_label_value(value)}
    labels.update(selector_labels(instance, plan.project))
    labels[HUB_ACCESS_LABEL] = "true"
    return V1ObjectMeta(name=dns_label(plan.container_name), namespace=site.namespace,
                        labels=labels, annotations=dict(plan.labels))


def _security_context(plan: WorkspacePlan) -> V1SecurityContext:
    hardening = plan.hardening
    return V1SecurityContext(
        run_as_user=plan.uid, run_as_group=plan.gid, run_as_non_root=True,
        allow_privilege_escalation=not hardening.no_new_privileges,
        capabilities=V1Capabilities(drop=list(hardening.drop_capabilities)),
        read_only_root_filesystem=hardening.read_only_root,
        privileged=False,
        seccomp_profile=V1SeccompProfile(type="RuntimeDefault"),
    )


def _tmpfs_size(options: str) -> str | None:
    for option in options.split(","):
        if option.startswith("size="):
            return memory_quantity(option.removeprefix("size="))
    return None


def _tmpfs_volumes(plan: WorkspacePlan) -> list[tuple[V1Volume, V1VolumeMount]]:
    """Where Jupyter must write outside the mounts (``/tmp``): memory-backed, size-limited, as
    Docker's tmpfs; the pod's memory limit counts it."""
    pairs = []
    for path, options in plan.hardening.tmpfs:
        name = dns_label("tmpfs" + path.replace("/", "-"))
        volume = V1Volume(name=name, empty_dir=V1EmptyDirVolumeSource(medium="Memory", size_limit=_tmpfs_size(options)))
        pairs.append((volume, V1VolumeMount(name=name, mount_path=path)))
    return pairs


def _dataset_volumes(plan: WorkspacePlan, site: KubernetesSite) -> list[tuple[V1Volume | None, V1VolumeMount]]:
    """Each extract of the plan read-only twice over (the claim and the mount), a subPath of the
    extracts claim: the plan's own ``<project>/<dataset>@<version>`` and nothing above it."""
    if not plan.dataset_mounts:
        return []
    if site.datasets_claim is None:
        raise SiteConfigurationError(
            "this site names no PersistentVolumeClaim for the extracts; an administrator sets datasets_claim "
            "(the claim holding TRE_EXTRACTS_ROOT) before project members can start a workspace")
    volume = V1Volume(name="datasets", persistent_volume_claim=V1PersistentVolumeClaimVolumeSource(
        claim_name=site.datasets_claim, read_only=True))
    return [(volume if n == 0 else None,
             V1VolumeMount(name="datasets", mount_path=str(mount.target), read_only=True,
                           sub_path=_relative(mount, site.data_root)))
            for n, mount in enumerate(plan.dataset_mounts)]


def _relative(mount: Mount, root: PurePosixPath) -> str:
    """The mount's folder below ``root``; the plan already refused paths escaping the root."""
    try:
        return str(PurePosixPath(mount.source).relative_to(root))
    except ValueError:
        raise SiteConfigurationError(
            f"{mount.source} is not below {root}; the site's root does not match the plan's") from None


def _workspace_mounts(plan: WorkspacePlan, site: KubernetesSite) -> list[V1VolumeMount]:
    """``/project`` and the home, read-write subPaths of the one workspaces claim."""
    if plan.writable_root is None:
        raise ValueError("the plan does not say below which root its folders are")
    root = PurePosixPath(plan.writable_root)
    return [V1VolumeMount(name="workspaces", mount_path=str(m.target), sub_path=_relative(m, root),
                          read_only=False)
            for m in plan.mounts if not m.read_only]


def make_pod(plan: WorkspacePlan, site: KubernetesSite) -> V1Pod:
    """The workspace pod: the plan's image, env, limits and mounts, and nothing of the node's.

    Requests equal limits so a node never promises more memory than it has (Guaranteed QoS);
    no service account token and no service links, since a workspace has no business with
    the Kubernetes API or the names of other services.
    """
    tmpfs = _tmpfs_volumes(plan)
    datasets = _dataset_volumes(plan, site)
    volumes = [v for v, _ in tmpfs] + [v for v, _ in datasets if v is not None] + [
        V1Volume(name="workspaces", persistent_volume_claim=V1PersistentVolumeClaimVolumeSource(
            claim_name=site.workspaces_claim, read_only=False))]
    mounts = [m for _, m in tmpfs] + [m for _, m in datasets] + _workspace_mounts(plan, site)
    limits = {"memory": memory_quantity(plan.mem_limit), "cpu": str(plan.cpu_limit)}
    container = V1Container(
        name=WORKSPACE_CONTAINER, image=plan.image, image_pull_policy="IfNotPresent",
        env=[V1EnvVar(name=k, value=v) for k, v in plan.env.items()],
        working_dir=str(plan.working_dir),
        ports=[V1ContainerPort(name="notebook-port", container_port=site.workspace_port, protocol="TCP")],
        resources=V1ResourceRequirements(limits=limits, requests=dict(limits)),
        security_context=_security_context(plan),
        volume_mounts=mounts,
    )
    return V1Pod(
        api_version="v1", kind="Pod",
        metadata=pod_metadata(plan, site),
        spec=V1PodSpec(
            containers=[container], volumes=volumes,
            hostname=plan.project if _DNS_LABEL.match(plan.project) else None,
            automount_service_account_token=False, enable_service_links=False,
            security_context=V1PodSecurityContext(
                run_as_user=plan.uid, run_as_group=plan.gid, run_as_non_root=True,
                seccomp_profile=V1SeccompProfile(type="RuntimeDefault")),
            restart_policy="OnFailure",
        ),
    )


def _peer(labels: Mapping[str, str]) -> V1NetworkPolicyPeer:
    return V1NetworkPolicyPeer(pod_selector=V1LabelSelector(match_labels=dict(labels)))


def _policy_meta(name: str, instance: str, site: KubernetesSite, **extra: str) -> V1ObjectMeta:
    labels = tre_labels.object_labels(instance, "network-policy", **extra)
    return V1ObjectMeta(name=name, namespace=site.namespace, labels=labels)


def default_deny_policy(instance: str, site: KubernetesSite) -> V1NetworkPolicy:
    """Every workspace pod of the installation: no traffic in or out unless a project's policy
    allows it. Policies add up, so this stays a wall even where a project's policy is missing."""
    selector = tre_labels.object_labels(instance, tre_labels.WORKSPACE)
    return V1NetworkPolicy(
        api_version="networking.k8s.io/v1", kind="NetworkPolicy",
        metadata=_policy_meta(dns_label(f"tre-{instance}-workspaces-deny-all"), instance, site),
        spec=V1NetworkPolicySpec(pod_selector=V1LabelSelector(match_labels=selector),
                                 policy_types=["Ingress", "Egress"], ingress=[], egress=[]),
    )


def project_policy(plan: WorkspacePlan, site: KubernetesSite) -> V1NetworkPolicy:
    """The project's workspace pods: reached only by the hub and the proxy on the notebook port,
    reaching only the hub's API port. No DNS: KubeSpawner hands the hub's address as an IP.
    No rule names another workspace pod, so projects (and members) never reach each other."""
    instance = plan.labels[tre_labels.INSTANCE]
    return V1NetworkPolicy(
        api_version="networking.k8s.io/v1", kind="NetworkPolicy",
        metadata=_policy_meta(dns_label(f"tre-{instance}-{plan.project}"), instance, site, project=plan.project),
        spec=V1NetworkPolicySpec(
            pod_selector=V1LabelSelector(match_labels=selector_labels(instance, plan.project)),
            policy_types=["Ingress", "Egress"],
            ingress=[V1NetworkPolicyIngressRule(
                _from=[_peer(site.hub_pod_labels), _peer(site.proxy_pod_labels)],
                ports=[V1NetworkPolicyPort(protocol="TCP", port=site.workspace_port)])],
            egress=[V1NetworkPolicyEgressRule(
                to=[_peer(site.hub_pod_labels)],
                ports=[V1NetworkPolicyPort(protocol="TCP", port=site.hub_api_port)])],
        ),
    )


def network_policies(plan: WorkspacePlan, site: KubernetesSite) -> list[V1NetworkPolicy]:
    """Both policies a workspace needs before its pod starts: the installation's deny-all and
    its project's allowances."""
    return [default_deny_policy(plan.labels[tre_labels.INSTANCE], site), project_policy(plan, site)]


def make_claim(name: str, size: str, site: KubernetesSite, *, read_only: bool) -> V1PersistentVolumeClaim:
    """A claim for the datasets (``ReadOnlyMany``: no pod can ever write them) or for the
    workspaces (``ReadWriteMany``: every node running a member of the project shares ``/project``)."""
    return V1PersistentVolumeClaim(
        api_version="v1", kind="PersistentVolumeClaim",
        metadata=V1ObjectMeta(name=name, namespace=site.namespace,
                              labels={tre_labels.MANAGED: "true", tre_labels.COMPONENT: "storage"}),
        spec=V1PersistentVolumeClaimSpec(
            access_modes=["ReadOnlyMany" if read_only else "ReadWriteMany"],
            storage_class_name=site.storage_class,
            resources=V1VolumeResourceRequirements(requests={"storage": size}),
        ),
    )
