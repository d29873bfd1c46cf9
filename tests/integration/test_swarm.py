"""Workspaces on a real two-node Docker Swarm, built on this machine without touching the shared
host engine's settings:

- two node containers (image ``swarm_node/``, built once per content hash) on a bridge network of
  the test's own, each running its own Docker engine on its own volume: node 1 is the manager,
  node 2 a worker;
- ``tre/singleuser`` loaded into both engines (``docker save`` from the host engine);
- the projects' extracts (built by ``tre extracts build``, as the hub's extraction service does)
  only on node 2 (the extracts folder bind-mounted there, and node labels
  ``tre.dataset.claims=2024.1``, ``tre.dataset.hospital_stays=2024.1``, nothing of
  ``beneficiaries``); the workspaces folder on both, as shared storage is;
- ``ProjectSwarmSpawner`` driven directly against node 1's engine, with the few JupyterHub objects
  it needs, no hub process; where the hub's container would be, on node 1, an HTTP server on the
  hub's port stands in for it (``hub_container``), so the test proves the spawner joins it to the
  project network and that it and the workspace reach each other by name. The attack suite's hub
  API checks need the real hub: they stay with tests/integration/test_attacks.py, on one host.

It proves that alice's cardio-risk workspace is placed on node 2, the only node holding its
datasets; that bob's diabetes-outcomes workspace (beneficiaries, held by no node) is refused with a
clear message instead of pending for ever; and that the attack suite's network and mount checks,
run inside the task's container through node 2's engine, find every wall in place.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import docker
import pytest

from datasets.audit import AuditAction
from tre_core.db import session_scope
from datasets.models import AuditEvent
from tre_core.settings import TRESettings
from datasets import workflow
from hub import reconciler
from spawner.catalogue_workspace import WorkspaceRefused
from spawner.swarm_spawner import ProjectSwarmSpawner
from tests.integration import attack_suite, canary
from tests.integration.conftest import REPO, VENV_BIN

pytestmark = pytest.mark.integration

IMAGE = "tre/singleuser:latest"
NODE_CONTEXT = Path(__file__).parent / "swarm_node"
SUITE_SOURCE = Path(attack_suite.__file__).read_text()
CANARY_SOURCE = Path(canary.__file__).read_text()
ALICE_DATASETS = ["claims", "hospital_stays"]
ALL_DATASETS = ["beneficiaries", "claims", "cohort", "hospital_stays", "referentials"]
HTTP_PORT = 8080
DNS_PORT = 53
# The network and mount checks (and the process walls they rest on); the hub API, package index and
# host listener checks need a hub and its index on the swarm, the resource hogs a quiet machine:
# test_attacks.py.
SKIPPED_ATTACKS = [a for a in attack_suite.ATTACK_IDS
                   if a.startswith(("control-", "hub-api-", "host-", "package-index-"))
                   or a in ("fork-bomb", "memory-hog", "cpu-limit")]


def phase(timings: dict[str, float], name: str, began: float) -> float:
    now = time.monotonic()
    timings[name] = round(now - began, 1)
    print(f"[swarm] {name}: {timings[name]} s", flush=True)
    return now


def node_image(client: docker.DockerClient, labels: dict[str, str]) -> str:
    """The node image, built only when its files changed (tagged with their hash)."""
    digest = hashlib.sha256()
    for path in sorted(NODE_CONTEXT.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    tag = f"tre-test/swarm-node:{digest.hexdigest()[:12]}"
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        client.images.build(path=str(NODE_CONTEXT), tag=tag, rm=True, forcerm=True,
                            labels={"tre.managed": "true", "tre.component": "swarm-node-image"})
    return tag


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - not up yet; reported if it never is
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"{what} did not happen in {timeout} s (last error: {last})")


def load_image(host: docker.DockerClient, node: docker.DockerClient) -> None:
    """``docker save`` from the host engine streamed into the node's engine."""
    stream = host.api.get_image(IMAGE, chunk_size=4 * 2**20)
    node.api.load_image(stream, quiet=True)


def start_node(host: docker.DockerClient, image: str, name: str, hostname: str, network: str,
               labels: dict[str, str], mounts: list) -> object:
    """A node container. Not --privileged: this host's bounding set lacks CAP_SYS_RESOURCE, which
    --privileged asks for. Every other capability, no confinement (``systempaths=unconfined`` is
    written as the CLI writes it: no masked and no read-only /proc paths) and a cgroup namespace
    of its own, in which the node mounts its cgroups writable (swarm_node/entrypoint.sh)."""
    host_config = host.api.create_host_config(
        mounts=mounts, cap_add=["ALL"], cap_drop=["SYS_RESOURCE"], cgroupns="private",
        security_opt=["apparmor=unconfined", "seccomp=unconfined"])
    host_config["MaskedPaths"] = []
    host_config["ReadonlyPaths"] = []
    created = host.api.create_container(
        image, name=name, hostname=hostname, labels=labels, detach=True, host_config=host_config,
        networking_config=host.api.create_networking_config({network: host.api.create_endpoint_config()}))
    host.api.start(created["Id"])
    return host.containers.get(created["Id"])


@dataclass
class Node:
    container: object
    address: str
    client: docker.DockerClient
    node_id: str = ""
    hostname: str = ""


@dataclass
class Swarm:
    instance: str
    home: Path
    settings: TRESettings
    manager: Node
    worker: Node
    labels: dict[str, str]
    image_digest: str
    timings: dict[str, float] = field(default_factory=dict)


def tre(env: dict[str, str], *args: str) -> str:
    return subprocess.run([VENV_BIN / "tre", *args], env=env, check=True, cwd=REPO,
                          capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def swarm(docker_client) -> Iterator[Swarm]:
    host = docker_client
    instance = f"test-{secrets.token_hex(3)}"
    labels = {"tre.managed": "true", "tre.instance": instance, "tre.component": "swarm-test"}
    home = Path(tempfile.mkdtemp(prefix=f"tre-{instance}-"))
    timings: dict[str, float] = {}
    made_containers, made_volumes, network = [], [], None
    try:
        began = time.monotonic()
        env = dict(os.environ, TRE_HOME=str(home), TRE_INSTANCE=instance)
        tre(env, "demo", "init", "--scale", "0.1")
        tre(env, "images", "register", "singleuser", "--as", "admin")
        tre(env, "extracts", "build")  # what the hub's extraction service does once grants are in force
        settings = TRESettings(home=home, instance=instance)
        settings.workspaces_root.mkdir(parents=True, exist_ok=True)
        began = phase(timings, "catalogue and demo data", began)

        image = node_image(host, labels)
        began = phase(timings, "node image (cached by content hash)", began)
        # Internal: the nodes need nothing beyond each other and the test.
        network = host.networks.create(f"tre-{instance}-swarm", driver="bridge", internal=True, labels=labels)
        nodes = []
        for index in (1, 2):
            volume = host.volumes.create(f"tre-{instance}-node{index}", labels=labels)
            made_volumes.append(volume)
            mounts = [docker.types.Mount(target="/var/lib/docker", source=volume.name, type="volume"),
                      # shared storage: the projects' folders, at the same path on every node
                      docker.types.Mount(target=str(settings.workspaces_root), source=str(settings.workspaces_root),
                                         type="bind")]
            if index == 2:  # only node 2 holds the datasets' extracts
                mounts.append(docker.types.Mount(target=str(settings.extracts_root),
                                                 source=str(settings.extracts_root), type="bind", read_only=True))
            container = start_node(host, image, f"tre-{instance}-node{index}", f"node{index}", network.name,
                                   labels, mounts)
            made_containers.append(container)
            container.reload()
            address = container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
            nodes.append(Node(container, address, docker.DockerClient(base_url=f"tcp://{address}:2375", version="1.41", timeout=600)))
        for node in nodes:
            wait_for(node.client.ping, 60, f"the engine of {node.container.name}")
        began = phase(timings, "two node engines up", began)

        manager, worker = nodes
        manager.client.swarm.init(advertise_addr=manager.address, listen_addr=f"{manager.address}:2377")
        token = manager.client.swarm.attrs["JoinTokens"]["Worker"]
        worker.client.swarm.join(remote_addrs=[f"{manager.address}:2377"], join_token=token,
                                 advertise_addr=worker.address, listen_addr=f"{worker.address}:2377")
        wait_for(lambda: len([n for n in manager.client.nodes.list() if n.attrs["Status"]["State"] == "ready"]) == 2,
                 60, "two ready swarm nodes")
        for node in nodes:
            node.node_id = node.client.info()["Swarm"]["NodeID"]
            node.hostname = manager.client.nodes.get(node.node_id).attrs["Description"]["Hostname"]
        # what a data steward does on the node where the datasets are put
        spec = manager.client.nodes.get(worker.node_id).attrs["Spec"]
        spec["Labels"] = {"tre.dataset.claims": "2024.1", "tre.dataset.hospital_stays": "2024.1"}
        manager.client.nodes.get(worker.node_id).update(spec)
        began = phase(timings, "swarm of two nodes", began)

        loads = [threading.Thread(target=load_image, args=(host, node.client)) for node in nodes]
        for thread in loads:
            thread.start()
        for thread in loads:
            thread.join()
        digest = host.images.get(IMAGE).id
        for node in nodes:
            assert node.client.images.get(digest).id == digest, f"{IMAGE} did not load into {node.hostname}"
        phase(timings, f"{IMAGE} loaded into both nodes", began)
        yield Swarm(instance=instance, home=home, settings=settings, manager=manager, worker=worker,
                    labels=labels, image_digest=digest, timings=timings)
    finally:
        for container in made_containers:  # the swarm, its services and networks go with them
            container.remove(force=True, v=True)
        for volume in made_volumes:
            volume.remove(force=True)
        if network is not None:
            network.remove()
        shutil.rmtree(home, ignore_errors=True)


def spawner_for(swarm: Swarm, user: str, project: str, **traits) -> ProjectSwarmSpawner:
    """A ProjectSwarmSpawner as the hub makes it, with the few hub objects it reads."""
    ProjectSwarmSpawner._client = None  # the client is cached per class: this swarm's manager
    hub = SimpleNamespace(api_url="http://tre-hub:8081/hub/api", base_url="/hub/", url="http://tre-hub:8081/hub/",
                          public_host="", host="")
    orm_user = SimpleNamespace(name=user)
    user_object = SimpleNamespace(name=user, escaped_name=user, url=f"/user/{user}/", id=1, orm_user=orm_user,
                                  db=None, settings={})
    spawner = ProjectSwarmSpawner(
        user=user_object, hub=hub, orm_spawner=SimpleNamespace(name=project, user_options={}, server=None),
        api_token=secrets.token_hex(16), oauth_client_id=f"jupyterhub-user-{user}-{project}",
        client_kwargs={"base_url": f"tcp://{swarm.manager.address}:2375", "timeout": 120},
        catalogue_url=swarm.settings.catalogue_url, extracts_root=str(swarm.settings.extracts_root),
        workspaces_root=str(swarm.settings.workspaces_root), instance=swarm.instance,
        # The nested nodes cannot set up IPsec between them (no xfrm state is ever made), so the
        # project networks here are not encrypted; on real hosts they are (the default).
        default_mem_limit="1G", encrypted_network=False, **traits)
    return spawner


def task_container(swarm: Swarm, service: str):
    found = swarm.worker.client.containers.list(filters={"label": f"com.docker.swarm.service.name={service}"})
    assert len(found) == 1, f"{len(found)} containers of {service} on {swarm.worker.hostname}"
    return found[0]


def python_json(container, arguments: dict, source: str = SUITE_SOURCE):
    """The suite as the researcher's code runs: as uid 1000, under the workspace's seccomp filter."""
    result = container.exec_run(["python3", "-m", "tre_seccomp", "python3", "-c", source, json.dumps(arguments)],
                                user="1000:100", demux=True)
    stdout, stderr = (part.decode(errors="replace") if part else "" for part in result.output)
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout: {stdout}\nstderr: {stderr}"
    return json.loads(stdout)


def audit_rows(swarm: Swarm, action: AuditAction) -> list[dict]:
    with session_scope(swarm.settings.catalogue_url) as session:
        return [{"actor": e.actor, "project": e.project, **e.details}
                for e in session.query(AuditEvent).filter(AuditEvent.action == action.value)]


@dataclass
class Canaries:
    http_same_network: str  # on alice's project network, on node 1: must be reachable
    http_other: str  # on another project's network, on node 1
    http: str  # on an ordinary bridge network of node 2
    dns: str
    name: str
    containers: list


def run_canary(node: Node, network: str, labels: dict, *args: str, name: str | None = None):
    container = node.client.containers.run(
        IMAGE, ["python3", "-c", CANARY_SOURCE, *args], detach=True, network=network, labels=labels, name=name,
        user="1000:100", read_only=True, cap_drop=["ALL"], pids_limit=64, mem_limit="128m")
    wait_for(lambda: "READY" in container.logs().decode(errors="replace"), 60, f"canary {args[0]} ready")
    container.reload()
    return container, container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]


@pytest.fixture(scope="module")
def hub_stand_in(swarm: Swarm):
    """Where the hub's container would be: on the manager, outside every project network until
    the spawner joins it to one. An HTTP server on the hub's port stands in for the hub."""
    container, _ = run_canary(swarm.manager, "bridge", {**swarm.labels, "tre.component": "hub-stand-in"},
                              "http", "8081", "hub", name=f"tre-{swarm.instance}-hub")
    yield container
    container.remove(force=True)


@pytest.fixture(scope="module")
def alice_workspace(swarm: Swarm, hub_stand_in):
    began = time.monotonic()
    spawner = spawner_for(swarm, "alice", "cardio-risk", hub_container=hub_stand_in.name)
    address = asyncio.run(spawner.start())
    phase(swarm.timings, "alice's workspace started through ProjectSwarmSpawner", began)
    yield spawner, address
    if spawner.object_id:  # the last test stops it; this is for when it did not get there
        asyncio.run(spawner.stop())


@pytest.fixture(scope="module")
def canaries(swarm: Swarm, alice_workspace) -> Iterator[Canaries]:
    spawner, _ = alice_workspace
    labels = {**swarm.labels, "tre.component": "canary"}
    made = []
    manager, worker = swarm.manager.client, swarm.worker.client
    other = manager.networks.create(f"tre-{swarm.instance}-other-project", driver="overlay", internal=True,
                                    attachable=True, labels=labels)
    plain = worker.networks.create(f"tre-{swarm.instance}-canary", driver="bridge", labels=labels)
    try:
        token, name = secrets.token_hex(8), f"c{secrets.token_hex(6)}.tre-canary.test"
        same, same_ip = run_canary(swarm.manager, spawner.network_name, labels, "http", str(HTTP_PORT), token)
        made.append(same)
        far, far_ip = run_canary(swarm.manager, other.name, labels, "http", str(HTTP_PORT), token)
        made.append(far)
        http, http_ip = run_canary(swarm.worker, plain.name, labels, "http", str(HTTP_PORT), token)
        made.append(http)
        dns, dns_ip = run_canary(swarm.worker, plain.name, labels, "dns", str(DNS_PORT), name, http_ip)
        made.append(dns)
        yield Canaries(http_same_network=f"{same_ip}:{HTTP_PORT}", http_other=f"{far_ip}:{HTTP_PORT}",
                       http=f"{http_ip}:{HTTP_PORT}", dns=f"{dns_ip}:{DNS_PORT}", name=name, containers=made)
    finally:
        for container in made:
            container.remove(force=True)
        other.remove()
        plain.remove()


def test_workspace_runs_on_the_only_node_holding_its_datasets(swarm, alice_workspace):
    spawner, address = alice_workspace
    assert address == (spawner.service_name, 8888)
    tasks = swarm.manager.client.api.tasks(filters={"service": spawner.service_name, "desired-state": "running"})
    assert [t["NodeID"] for t in tasks] == [swarm.worker.node_id]
    assert task_container(swarm, spawner.service_name).status == "running"
    [start] = [row for row in audit_rows(swarm, AuditAction.WORKSPACE_START) if row["project"] == "cardio-risk"]
    assert start["node"] == swarm.worker.hostname
    assert start["datasets"] == {"claims": "2024.1", "hospital_stays": "2024.1"}


def test_the_task_carries_the_plans_walls(swarm, alice_workspace):
    spawner, _ = alice_workspace
    config = task_container(swarm, spawner.service_name).attrs
    host_config = config["HostConfig"]
    assert config["Config"]["User"] == "1000:100"
    assert host_config["ReadonlyRootfs"] is True
    assert host_config["CapDrop"] == ["ALL"] and not host_config.get("CapAdd")
    assert host_config["PidsLimit"] == 512
    assert host_config["Memory"] == 2**30
    assert not host_config.get("Privileged")
    mounts = {m["Destination"]: m["RW"] for m in config["Mounts"]}
    assert mounts == {"/data/claims": False, "/data/hospital_stays": False, "/project": True,
                      "/home/alice": True, "/tmp": True}


def test_a_project_whose_datasets_no_node_holds_is_refused_in_words(swarm):
    spawner = spawner_for(swarm, "bob", "diabetes-outcomes", placement_timeout=5)
    with pytest.raises(WorkspaceRefused) as refused:
        asyncio.run(spawner.start())
    message = refused.value.jupyterhub_message
    assert "No machine of the platform holds the datasets of project diabetes-outcomes" in message
    assert "beneficiaries 2024.1, claims 2024.1" in message
    assert not swarm.manager.client.services.list(filters={"name": spawner.service_name})
    [row] = [r for r in audit_rows(swarm, AuditAction.WORKSPACE_REFUSED) if r["project"] == "diabetes-outcomes"]
    assert row["reason"] == "no_node_for_datasets" and row["actor"] == "bob"


@pytest.fixture(scope="module")
def attack_results(swarm, alice_workspace, canaries):
    spawner, _ = alice_workspace
    began = time.monotonic()
    container = task_container(swarm, spawner.service_name)
    marker = swarm.settings.workspaces_root / "diabetes-outcomes" / "shared" / f"bob-only-{secrets.token_hex(4)}"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("bob only\n")
    network = swarm.manager.client.api.inspect_network(spawner.network_name)["IPAM"]["Config"][0]
    # the projects' extract keys, and as the control of the search for them a key-like file planted
    # in alice's project folder (shared storage: the same path on every node)
    keys = sorted((swarm.home / "secrets" / "extracts").glob("*.key"))
    assert {k.stem for k in keys} >= {"cardio-risk", "diabetes-outcomes"}, keys
    planted_text = secrets.token_hex(32) + "\n"
    planted = swarm.settings.workspaces_root / "cardio-risk" / "shared" / f"tre-attack-planted-{secrets.token_hex(6)}.key"
    planted.write_text(planted_text)
    planted.chmod(0o644)
    arguments = {
        "user": "alice", "granted_datasets": ALICE_DATASETS, "all_datasets": ALL_DATASETS,
        "other_project": "diabetes-outcomes", "other_project_markers": [str(marker), f"/project/{marker.name}"],
        "project_subnet": network["Subnet"], "gateway": network["Gateway"],
        "canary_http": canaries.http, "canary_dns": canaries.dns, "canary_name": canaries.name,
        # whatever listens on port 53 of the node's gateway: any reply is a finding (an attack given
        # no address now counts as not blocked, so it is asked for real)
        "host_dns": f"{network['Gateway']}:53",
        "other_server_address": canaries.http_other, "skip": SKIPPED_ATTACKS,
        "project": "cardio-risk",
        "extract_key_fingerprints": [[k.stat().st_size, hashlib.sha256(k.read_bytes()).hexdigest()] for k in keys],
        "extract_key_paths": [str(k) for k in keys],
        "planted_key_fingerprint": [len(planted_text), hashlib.sha256(planted_text.encode()).hexdigest()],
    }
    since = int(time.time()) - 1
    results = python_json(container, arguments)
    reachable = python_json(container, {"mode": "probe", "http": canaries.http_same_network})
    # what the canaries the workspace must never reach heard (the first one is the control's)
    heard = [line for c in canaries.containers[1:] for line in c.logs(since=since).decode(errors="replace").splitlines()
             if line.startswith("HIT")]
    phase(swarm.timings, "attack suite in the workspace on node 2", began)
    print(json.dumps(swarm.timings, indent=1))
    return results, reachable, heard


def test_the_project_network_spans_the_nodes(attack_results):
    """Control: a server on the project's own network, on the other node, answers; so each
    blocked probe below is a wall, not a broken network."""
    _, reachable, _ = attack_results
    assert reachable["http"]["outcome"] == "connected", reachable


def test_network_and_mount_attacks_are_all_blocked(attack_results):
    results, _, _ = attack_results
    ran = {r["attack"] for r in results}
    for expected in ("route-out", "dns-via-resolver", "dns-direct-canary-server", "canary-http-reachable",
                     "other-project-server-reachable", "data-write-new-file", "data-overwrite-file",
                     "data-delete-file", "data-ungranted-dataset-visible", "other-project-files-visible",
                     "setuid-binaries", "capabilities", "mount-syscall", "docker-socket", "dns-direct-host-gateway",
                     "no-new-privileges-outside-wrapper", "process-vm", "device-nodes"):
        assert expected in ran, f"{expected} did not run"
    failed = [r for r in results if not r["blocked"] or r.get("error")]
    assert not failed, json.dumps(failed, indent=1)


def test_no_canary_heard_from_the_workspace(attack_results):
    """The receiving end agrees: nothing the workspace sent arrived at a canary it must not reach."""
    _, _, heard = attack_results
    assert not heard, heard


def test_the_hub_container_is_joined_to_the_project_network_and_both_ends_reach_each_other(
        swarm, alice_workspace, hub_stand_in):
    """The hub on the swarm: the spawner joins its container to the project's network; the
    workspace reaches it by name at the API address it was given, and it reaches the workspace by
    the service's name (the address JupyterHub's proxy is given)."""
    spawner, (service, port) = alice_workspace
    hub_stand_in.reload()
    assert spawner.network_name in hub_stand_in.attrs["NetworkSettings"]["Networks"]
    container = task_container(swarm, spawner.service_name)
    env = dict(line.split("=", 1) for line in container.attrs["Config"]["Env"])
    assert env["JUPYTERHUB_API_URL"] == f"http://{hub_stand_in.name}:8081/hub/api"
    to_hub = python_json(container, {"mode": "probe", "http": f"{hub_stand_in.name}:8081"})
    assert to_hub["http"]["outcome"] == "connected" and "tre-canary hub" in to_hub["http"].get("body", ""), to_hub
    to_workspace = python_json(hub_stand_in, {"mode": "probe", "http": f"{service}:{port}"})
    assert to_workspace["http"]["outcome"] == "connected", to_workspace


def test_stopping_removes_the_service_and_is_recorded(swarm, alice_workspace):
    spawner, _ = alice_workspace
    service = spawner.service_name

    asyncio.run(spawner.stop())
    assert not swarm.manager.client.services.list(filters={"name": service})
    wait_for(lambda: not swarm.worker.client.containers.list(
        all=True, filters={"label": f"com.docker.swarm.service.name={service}"}), 60, "the task's container gone")
    stops = [r for r in audit_rows(swarm, AuditAction.WORKSPACE_STOP) if r["project"] == "cardio-risk"]
    assert [(r["actor"], r["user"]) for r in stops] == [("hub", "alice")]


class HubRecorder:
    """The hub's side of the reconciler's conversation: which servers it says run, and the stops
    the reconciler asks of it (the swarm here has no hub process; see the module's docstring)."""

    def __init__(self, running: set[tuple[str, str]]) -> None:
        self.running = running
        self.stops: list[tuple[str, str]] = []

    def running_servers(self) -> set[tuple[str, str]]:
        return set(self.running)

    def stop(self, user: str, server: str) -> None:
        self.stops.append((user, server))


def test_the_reconciler_sees_workspaces_running_on_other_nodes(swarm, hub_stand_in):
    """A grant that ends stops the swarm workspace mounting it, and a workspace the hub forgot is
    removed: the reconciler reads the manager's services, not only its own containers."""
    spawner = spawner_for(swarm, "erin", "cardio-risk", hub_container=hub_stand_in.name)
    asyncio.run(spawner.start())
    manager = swarm.manager.client
    try:
        assert manager.services.list(filters={"name": spawner.service_name})
        with session_scope(swarm.settings.catalogue_url) as session:
            workflow.revoke_grant(session, "steward", "cardio-risk", "hospital_stays")
        hub = HubRecorder({("erin", "cardio-risk")})
        stopped = reconciler.reconcile_once(hub, manager, swarm.settings)
        assert hub.stops == [("erin", "cardio-risk")]
        assert stopped == [("erin", "cardio-risk", "grant_ended:hospital_stays")]

        forgotten = HubRecorder(set())  # a hub restarted from an older database, say
        stopped = reconciler.reconcile_once(forgotten, manager, swarm.settings)
        assert stopped == [("erin", "cardio-risk", "orphan")]
        assert not manager.services.list(filters={"name": spawner.service_name})
        orphans = [r for r in audit_rows(swarm, AuditAction.WORKSPACE_STOP) if r.get("why") == "orphan"]
        assert [(r["actor"], r["user"], "service" in r) for r in orphans] == [("reconciler", "erin", True)]
    finally:
        if manager.services.list(filters={"name": spawner.service_name}):
            asyncio.run(spawner.stop())
