"""The walls of a workspace, attacked from inside: alice's cardio-risk workspace runs the attack
suite (tests/integration/attack_suite.py) as the researcher while bob's diabetes-outcomes
workspace runs next to it, and every attack must be blocked.

Targets the test sets up, all its own (traffic never leaves the machine):

- a canary HTTP server and a canary DNS server (the only server in the world answering a random
  ``*.tre-canary.test`` name) in containers on a Docker network of their own;
- on the host, a TCP listener and the same DNS canary bound to alice's project gateway address,
  so that "the host answered" has a definite meaning;
- a marker file in bob's /project.

Controls run first and prove each path the suite probes would have worked if a wall were missing
(the probes reach the canaries from where they are reachable; the server's token works on the
hub API; the hub's port answers on the gateway), so "blocked" means a wall, not a broken probe.
While the fork bomb and the memory hog run, the hub and bob's server must keep answering.

Set TRE_ATTACK_REPORT=<file> to keep the suite's raw results as JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest

from tre_core.db import session_scope
from datasets.models import Dataset
from tre_core.settings import TRESettings
from package_index import workflow as package_workflow
from tests.integration import attack_suite, canary

pytestmark = pytest.mark.integration

IMAGE = "tre/singleuser:latest"
SUITE_SOURCE = Path(attack_suite.__file__).read_text()
CANARY_SOURCE = Path(canary.__file__).read_text()
ALICE_DATASETS = ["claims", "hospital_stays"]
HTTP_PORT = 8080
DNS_PORT = 53
RESOURCE_ATTACKS = ("fork-bomb", "memory-hog")


def ip_on(container, network: str) -> str:
    container.reload()
    return container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]


def wait_for_log(container, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in container.logs().decode(errors="replace"):
            return
        container.reload()
        assert container.status in ("created", "running"), container.logs().decode(errors="replace")
        time.sleep(0.3)
    raise AssertionError(f"{container.name} did not say {text!r}: {container.logs().decode(errors='replace')}")


def python_json(container, arguments: dict, source: str = SUITE_SOURCE):
    """Run ``source`` with ``python3 -c`` as the researcher's code runs: under the seccomp filter
    the Jupyter server's process tree carries (``docker exec`` alone starts outside that tree, where
    no researcher ever is; test_code_runs_under_the_servers_filter checks the tree has it)."""
    result = container.exec_run(["python3", "-m", "tre_seccomp", "python3", "-c", source, json.dumps(arguments)],
                                user="1000:100", demux=True)
    stdout, stderr = (part.decode(errors="replace") if part else "" for part in result.output)
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout: {stdout}\nstderr: {stderr}"
    try:
        return json.loads(stdout)
    except ValueError:
        raise AssertionError(f"not JSON:\nstdout: {stdout}\nstderr: {stderr}") from None


# --- the canaries ---------------------------------------------------------------------------------

@dataclass(repr=False)
class Canaries:
    network: str
    http: str  # ip:port
    dns: str  # ip:port
    name: str
    token: str
    containers: list = field(default_factory=list)
    probe_from_inside: dict = field(default_factory=dict)

    def hits_since(self, since: int) -> list[str]:
        lines = []
        for container in self.containers:
            log = container.logs(since=since).decode(errors="replace")
            lines += [line for line in log.splitlines() if line.startswith("HIT")]
        return lines


@pytest.fixture(scope="module")
def canaries(hub):
    client = hub.client
    labels = {"tre.managed": "true", "tre.instance": hub.instance, "tre.component": "canary"}
    # An ordinary (not internal) bridge: what separates the workspace from it must be the
    # workspace's side, not this network's isolation.
    network = client.networks.create(f"tre-{hub.instance}-canary", driver="bridge", labels=labels)
    made = []
    try:
        token = secrets.token_hex(8)
        name = f"c{secrets.token_hex(6)}.tre-canary.test"  # .test is reserved: no one else answers it
        hardening = {"user": "1000:100", "read_only": True, "cap_drop": ["ALL"],
                     "security_opt": ["no-new-privileges:true"], "pids_limit": 64, "mem_limit": "256m"}
        http_server = client.containers.run(
            IMAGE, ["python3", "-c", CANARY_SOURCE, "http", str(HTTP_PORT), token], detach=True,
            name=f"tre-{hub.instance}-canary-http", network=network.name, labels=labels, **hardening)
        made.append(http_server)
        http_ip = ip_on(http_server, network.name)
        dns_server = client.containers.run(
            IMAGE, ["python3", "-c", CANARY_SOURCE, "dns", str(DNS_PORT), name, http_ip], detach=True,
            name=f"tre-{hub.instance}-canary-dns", network=network.name, labels=labels,
            # Docker sets ip_unprivileged_port_start=0 in a container's own network namespace
            **hardening)
        made.append(dns_server)
        wait_for_log(http_server, "READY")
        wait_for_log(dns_server, "READY")
        found = Canaries(network=network.name, http=f"{http_ip}:{HTTP_PORT}",
                         dns=f"{ip_on(dns_server, network.name)}:{DNS_PORT}", name=name, token=token,
                         containers=made)
        # control: from where the canaries ARE reachable, the suite's own probes get through
        found.probe_from_inside = python_json(
            http_server, {"mode": "probe", "dns": found.dns, "name": name, "http": found.http})
        yield found
    finally:
        for container in made:
            container.remove(force=True)
        network.remove()


# --- the workspaces and the run -------------------------------------------------------------------

@dataclass(repr=False)  # failure reports show the evidence, not this whole record
class Run:
    results: dict[str, dict]
    arguments: dict
    alice_ip: str
    polls: list[tuple[float, str, bool, str]]
    canary_hits: list[str]
    host_tcp_hits: list
    host_dns_hits: list
    host_dns_bound: bool
    controls: dict
    own_server_after: str


def monitor(hub, bob, stop: threading.Event, polls: list) -> None:
    """Ask the hub's health and bob's server (through the proxy, as bob) every half second."""
    bob_status = f"{hub.url}/user/bob/diabetes-outcomes/api/status"
    while not stop.is_set():
        for what, ask in (("hub", lambda: bob.get(f"{hub.url}/hub/health", timeout=5)),
                          ("bob", lambda: bob.get(bob_status, timeout=5))):
            started = time.time()
            try:
                reply = ask()
                ok = reply.status_code == 200 and (what == "hub" or "last_activity" in reply.json())
                detail = f"{reply.status_code} in {time.time() - started:.2f}s"
            except Exception as exc:  # noqa: BLE001 - a failed poll is the finding
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            polls.append((started, what, ok, detail))
        stop.wait(0.5)


@pytest.fixture(scope="module")
def run(hub, canaries):
    alice, bob = hub.login("alice"), hub.login("bob")
    started = []
    host_listeners = []
    left_behind: list[Path] = []
    try:
        alice_container = hub.start(alice, "alice", "cardio-risk")
        started.append((alice, "alice", "cardio-risk"))
        bob_container = hub.start(bob, "bob", "diabetes-outcomes")
        started.append((bob, "bob", "diabetes-outcomes"))

        alice_net = f"tre-{hub.instance}-cardio-risk"
        bob_net = f"tre-{hub.instance}-diabetes-outcomes"
        ipam = hub.client.networks.get(alice_net).attrs["IPAM"]["Config"][0]
        gateway, subnet = ipam["Gateway"].split("/")[0], ipam["Subnet"]
        alice_ip, bob_ip = ip_on(alice_container, alice_net), ip_on(bob_container, bob_net)

        # bob's project folder gets a marker alice must never see
        marker = f"tre-attack-marker-{secrets.token_hex(6)}.txt"
        result = bob_container.exec_run(["sh", "-c", f"echo bob-only > /project/{marker}"], user="1000:100")
        assert result.exit_code == 0, result.output
        bob_project = next(m["Source"] for m in bob_container.attrs["Mounts"] if m["Destination"] == "/project")
        left_behind.append(Path(bob_project) / marker)  # other tests expect bob's folder as it was
        assert left_behind[-1].exists()

        # host-side canaries on alice's gateway address, and their controls from the host
        host_tcp = canary.HostTcpCanary(gateway)
        host_listeners.append(host_tcp)
        # and one on a host address beyond alice's subnet: the canary network's gateway
        canary_gateway = hub.client.networks.get(canaries.network).attrs["IPAM"]["Config"][0]["Gateway"].split("/")[0]
        host_other = canary.HostTcpCanary(canary_gateway)
        host_listeners.append(host_other)
        host_dns = None
        try:
            host_dns = canary.HostDnsCanary(gateway, canaries.name, canaries.http.split(":")[0], port=DNS_PORT)
            host_listeners.append(host_dns)
        except OSError:
            pass  # port 53 of the gateway taken: the host's own DNS server listens there, and the
            # attack below then shows that the workspace gets no answer from it either
        controls = {"host_tcp": attack_suite.tcp_probe(gateway, host_tcp.port),
                    "host_other": attack_suite.tcp_probe(canary_gateway, host_other.port),
                    "host_dns": attack_suite.dns_query(gateway, DNS_PORT, canaries.name) if host_dns else None}
        host_tcp.hits.clear()
        host_other.hits.clear()
        if host_dns:
            host_dns.hits.clear()

        with session_scope(TRESettings(home=hub.home).catalogue_url) as session:
            all_datasets = sorted(d.slug for d in session.query(Dataset))
        # the projects' extract keys (made by the builds the starts waited for), and, as the
        # control of the search for them, a key-like file planted in alice's own project folder
        keys = sorted((hub.home / "secrets" / "extracts").glob("*.key"))
        assert {k.stem for k in keys} >= {"cardio-risk", "diabetes-outcomes"}, keys
        planted = f"tre-attack-planted-{secrets.token_hex(6)}.key"
        planted_text = secrets.token_hex(32) + "\n"
        result = alice_container.exec_run(["sh", "-c", f"printf '%s' '{planted_text.strip()}' > /project/{planted}; "
                                                       f"echo >> /project/{planted}"], user="1000:100")
        assert result.exit_code == 0, result.output
        alice_project = next(m["Source"] for m in alice_container.attrs["Mounts"] if m["Destination"] == "/project")
        left_behind.append(Path(alice_project) / planted)
        assert left_behind[-1].read_text() == planted_text
        # bob's project asks the package index for something; alice's workspace must not see it
        other_package = f"tre-bob-only-{secrets.token_hex(3)}"
        hub.tre("packages", "policy", "diabetes-outcomes", "any-approved-on-request", "--as", "admin")
        with session_scope(TRESettings(home=hub.home).catalogue_url) as session:
            package_workflow.ask(session, "bob", "diabetes-outcomes", other_package, "", "bob's own analysis needs it")

        arguments = {
            "user": "alice",
            "other_user": "bob",
            "granted_datasets": ALICE_DATASETS,
            "all_datasets": all_datasets,
            "other_project": "diabetes-outcomes",
            "other_project_markers": [f"/project/{marker}", str(Path(bob_project) / marker)],
            "project_subnet": subnet,
            "gateway": gateway,
            "proxy_api_port": int(hub.env["TRE_PROXY_API_PORT"]),
            "host_canary_port": host_tcp.port,
            "host_other_address": f"{canary_gateway}:{host_other.port}",
            "host_ports": [
                {"name": "hub-public", "port": int(hub.env["TRE_PUBLIC_PORT"])},
                {"name": "postgres", "port": 5432},
                {"name": "ssh", "port": 22},
                {"name": "dns-tcp", "port": 53},
                {"name": "docker-api", "port": 2375},
                {"name": "docker-api-tls", "port": 2376},
            ],
            "canary_http": canaries.http,
            "canary_dns": canaries.dns,
            "host_dns": f"{gateway}:{DNS_PORT}",  # any reply from whatever listens there is a finding
            "canary_name": canaries.name,
            "other_server_address": f"{bob_ip}:8888",
            "index_port": int(hub.env["TRE_PACKAGE_INDEX_PORT"]),
            "other_project_package": other_package,
            "pids_limit": int(hub.env.get("TRE_PIDS_LIMIT", 512)),
            "cpu_limit": float(hub.env.get("TRE_CPU_LIMIT", TRESettings(home=hub.home).cpu_limit)),
            "project": "cardio-risk",
            "extract_key_fingerprints": [[k.stat().st_size, hashlib.sha256(k.read_bytes()).hexdigest()] for k in keys],
            "extract_key_paths": [str(k) for k in keys],
            "planted_key_fingerprint": [len(planted_text), hashlib.sha256(planted_text.encode()).hexdigest()],
        }

        # the run, with the hub and bob's server watched all along
        polls: list = []
        stop = threading.Event()
        watcher = threading.Thread(target=monitor, args=(hub, bob, stop, polls), daemon=True)
        since = int(time.time())
        long_client = docker.from_env(timeout=600)  # the suite takes about a minute
        try:
            watcher.start()
            results = python_json(long_client.containers.get(alice_container.id), arguments)
        finally:
            stop.set()
            watcher.join(15)
            long_client.close()

        try:
            own = alice.get(f"{hub.url}/user/alice/cardio-risk/api/status", timeout=10)
            own_server_after = f"{own.status_code}"
        except Exception as exc:  # noqa: BLE001
            own_server_after = f"{type(exc).__name__}: {exc}"

        if os.environ.get("TRE_ATTACK_REPORT"):
            Path(os.environ["TRE_ATTACK_REPORT"]).write_text(json.dumps(
                {"arguments": arguments, "results": results, "polls": polls, "controls": controls,
                 "inside_probe": canaries.probe_from_inside}, indent=2))
        yield Run(
            results={entry["attack"]: entry for entry in results}, arguments=arguments, alice_ip=alice_ip,
            polls=polls, canary_hits=canaries.hits_since(since), host_tcp_hits=list(host_tcp.hits) + list(host_other.hits),
            host_dns_hits=list(host_dns.hits) if host_dns else [], host_dns_bound=host_dns is not None,
            controls=controls, own_server_after=own_server_after,
        )
    finally:
        for path in left_behind:
            path.unlink(missing_ok=True)
        for listener in host_listeners:
            listener.close()
        for session, user, project in reversed(started):
            hub.stop(session, user, project)


# --- controls: each probe would have got through where there is no wall ------------------------------

def test_the_suite_reported_every_attack_and_no_suite_error(run):
    assert sorted(run.results) == sorted(attack_suite.ATTACK_IDS)
    errors = {k: v["evidence"] for k, v in run.results.items() if v.get("error")}
    assert not errors, errors


def test_controls_the_probes_work_where_there_is_no_wall(run, canaries):
    for attack_id in attack_suite.ATTACK_IDS:
        if attack_id.startswith("control-"):
            entry = run.results[attack_id]
            assert not entry["blocked"], f"{attack_id}: {entry['evidence']}"
    inside = canaries.probe_from_inside
    http_ip = canaries.http.split(":")[0]
    assert inside["dns"]["outcome"] == "answer" and inside["dns"]["addresses"] == [http_ip], inside
    assert inside["dns_other_name"]["outcome"] == "answer" and inside["dns_other_name"]["rcode"] == 3, inside
    assert inside["http"]["outcome"] == "connected" and canaries.token in inside["http"].get("body", ""), inside
    assert run.controls["host_tcp"]["outcome"] == "connected", run.controls
    assert run.controls["host_other"]["outcome"] == "connected", run.controls
    if run.host_dns_bound:
        assert run.controls["host_dns"]["addresses"] == [http_ip], run.controls


# --- the attacks ------------------------------------------------------------------------------------

@pytest.mark.parametrize("attack_id", [a for a in attack_suite.ATTACK_IDS if not a.startswith("control-")])
def test_attack_is_blocked(run, attack_id):
    entry = run.results.get(attack_id)
    assert entry is not None, f"the suite did not report {attack_id}"
    assert not entry.get("error"), f"bug of the suite, not a finding: {entry['evidence']}"
    assert entry["blocked"], (f"NOT BLOCKED: {attack_suite.DESCRIPTIONS[attack_id]} is false.\n"
                              f"evidence: {entry['evidence']}")


def test_no_canary_heard_from_the_workspace(run):
    """The receiving end agrees: nothing the workspace sent arrived at any canary."""
    assert not run.canary_hits, run.canary_hits
    assert not run.host_tcp_hits, run.host_tcp_hits
    assert not run.host_dns_hits, run.host_dns_hits


@pytest.mark.parametrize("attack_id", RESOURCE_ATTACKS)
def test_hub_and_other_project_keep_answering_during(run, attack_id):
    entry = run.results[attack_id]
    during = [p for p in run.polls if entry["t0"] - 0.5 <= p[0] <= entry["t1"]]
    asked = {what for _, what, _, _ in during}
    assert asked == {"hub", "bob"}, f"too few polls during {attack_id} ({entry['t1'] - entry['t0']:.1f} s): {during}"
    failed = [p for p in during if not p[2]]
    assert not failed, f"during {attack_id}: {failed}"


def test_hub_and_other_project_answered_throughout(run):
    assert run.polls
    failed = [p for p in run.polls if not p[2]]
    assert not failed, failed


def test_own_server_survives_its_own_hogs(run):
    assert run.own_server_after == "200", run.own_server_after


def test_code_runs_under_the_servers_filter(hub):
    """The Jupyter server, whose kernels and terminals run the researcher's code, carries one more
    seccomp filter than a process the engine starts: the one that refuses ptrace."""
    alice = hub.login("alice")
    container = hub.start(alice, "alice", "cardio-risk")
    script = ("import os\n"
              "def filters(pid):\n"
              "    for line in open(f'/proc/{pid}/status'):\n"
              "        if line.startswith('Seccomp_filters:'): return int(line.split()[1])\n"
              "server = [p for p in os.listdir('/proc') if p.isdigit() and b'jupyterhub-singleuser' in open(f'/proc/{p}/cmdline','rb').read()]\n"
              "print(filters(server[0]), filters('self'))\n")
    result = container.exec_run(["python3", "-c", script], user="1000:100")
    server_filters, exec_filters = map(int, result.output.decode().split())
    assert server_filters == exec_filters + 1


def test_other_machines_cannot_reach_the_hubs_own_port(hub, canaries):
    """The hub listens on every address for its workspaces; a machine on another network of the
    host (here the canaries' ordinary bridge) must not reach it, while the host itself does."""
    port = int(hub.env["TRE_HUB_PORT"])
    gateway = hub.client.networks.get(canaries.network).attrs["IPAM"]["Config"][0]["Gateway"].split("/")[0]
    probe = ("import socket, sys\n"
             "try:\n"
             "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close(); print('open')\n"
             "except OSError as exc:\n"
             "    print('closed', exc)\n")
    outside = canaries.containers[0].exec_run(["python3", "-c", probe, gateway, str(port)])
    assert outside.output.decode().startswith("closed"), outside.output
    with socket.create_connection(("127.0.0.1", port), timeout=3):
        pass  # control: from the host itself, the port answers


def test_no_new_privileges_no_capability_and_the_cpu_limit_are_the_workspaces_own_settings(hub):
    """Read where the suite cannot fake them: the engine's settings of the workspace (docker
    inspect), and a process the engine starts outside the server's seccomp wrapper (docker exec),
    which gets only what the container itself was given. test_weakened_walls.py shows each of
    these reads, and the suite's probes, failing on a container started without the wall."""
    alice = hub.login("alice")
    container = hub.start(alice, "alice", "cardio-risk")
    container.reload()
    config = container.attrs["HostConfig"]
    assert "no-new-privileges:true" in (config["SecurityOpt"] or []), config["SecurityOpt"]
    assert config["CapDrop"] == ["ALL"] and not config["CapAdd"] and not config["Privileged"]
    assert not config["Devices"], config["Devices"]
    cpus = config["NanoCpus"] / 1e9 or config["CpuQuota"] / (config["CpuPeriod"] or 100_000)  # DockerSpawner: quota
    assert cpus == TRESettings(home=hub.home).cpu_limit, (config["NanoCpus"], config["CpuQuota"], config["CpuPeriod"])
    status = container.exec_run(["cat", "/proc/self/status"], user="1000:100").output.decode()
    assert "NoNewPrivs:\t1" in status and "CapBnd:\t0000000000000000" in status, status
