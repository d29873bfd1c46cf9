"""The Ansible deployment (ansible/) applied for real to a throwaway Debian 12 host made by the test.

The target is a systemd container built from the project's base image (tests/integration/
ansible_target/), with its own Docker engine on a labelled volume, on a bridge network of the test's;
Ansible reaches it over SSH with a key the test makes. The controller ships what an operator ships:
a wheelhouse (this repository's wheel and every pinned dependency of requirements.lock) and a
`docker save` archive of the singleuser image. Sign-on goes through the test's OpenID provider
(tests/oidc_provider), bound to the test network's gateway so that the hub on the target reaches it.

- the first run installs everything; the hub answers over HTTPS (nginx, self-signed certificate the
  test trusts explicitly), and from outside only 22 and 443 answer;
- alice signs in through the provider over HTTPS and starts her project workspace inside the target;
- a second run reports changed=0;
- a run with a required variable missing stops at the preflight, naming it, with changed=0;
- the TRE's state and PostgreSQL's data are on the encrypted volume: a probe written there is not in
  the volume's file in clear, while a control written beside it, outside the encrypted folders, is;
- a backup is encrypted (no file in it reads in clear); a restore with another key is refused and
  changes nothing; then a change, then tre-restore: the change is gone and the hub answers again;
- ansible-lint with the production profile passes.

Each phase's duration is printed (not asserted).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest
import requests
import yaml

from tests.integration.conftest import REPO, VENV_BIN, wait_for
from tests.integration.openid_provider import OpenIDProvider

pytestmark = pytest.mark.integration

ANSIBLE_DIR = REPO / "ansible"
TARGET_CONTEXT = REPO / "tests" / "integration" / "ansible_target"
TARGET_IMAGE = "tre-test/ansible-target:latest"
LABEL = "tre.test"
CACHE = Path(os.environ.get("TRE_TEST_CACHE", "/var/tmp/tre-test-cache")) / "ansible"
CLIENT_SECRET = "a-client-secret-for-the-deployment-test"
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)
WORKSPACE_SECONDS = 300


def timed(timings: dict[str, float], phase: str):
    """Context manager recording how long a phase took, printed at the end of the module."""
    class _Timer:
        def __enter__(self):
            self.started = time.monotonic()

        def __exit__(self, *exc):
            timings[phase] = time.monotonic() - self.started
            print(f"[ansible deploy] {phase}: {timings[phase]:.1f} s", file=sys.stderr)
    return _Timer()


def wheelhouse(tmp: Path) -> Path:
    """This repository's wheel plus the lock's dependencies (downloaded once per lock, then cached)."""
    lock = REPO / "requirements.lock"
    deps = CACHE / f"wheels-{hashlib.sha256(lock.read_bytes()).hexdigest()[:16]}"
    if not deps.exists():
        partial = deps.with_suffix(".partial")
        shutil.rmtree(partial, ignore_errors=True)
        subprocess.run([VENV_BIN / "pip", "download", "-q", "--require-hashes", "-r", lock, "-d", partial],
                       check=True)
        partial.rename(deps)
    house = tmp / "wheelhouse"
    shutil.copytree(deps, house)
    subprocess.run([VENV_BIN / "pip", "wheel", "-q", "--no-deps", "-w", house, REPO], check=True,
                   stdout=subprocess.DEVNULL)
    return house


def image_archive(client: docker.DockerClient, reference: str = "tre/singleuser:latest") -> Path:
    """`docker save` of the analysis image, cached by image id (an air-gapped site's release file)."""
    image = client.images.get(reference)
    # named after the reference itself: the same image may carry other tags, and `named=True`
    # would name the archive's image after whichever tag comes first
    archive = CACHE / f"images-{image.id.split(':')[1][:16]}-{reference.replace('/', '_').replace(':', '_')}.tar"
    if not archive.exists():
        partial = archive.with_suffix(".partial")
        with partial.open("wb") as out:
            for chunk in image.save(named=reference):
                out.write(chunk)
        partial.rename(archive)
    return archive


def target_image(client: docker.DockerClient) -> None:
    client.images.build(path=str(TARGET_CONTEXT), tag=TARGET_IMAGE, labels={LABEL: "ansible"}, rm=True)


def free_port_on(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def answers(address: str, port: int) -> bool:
    """Whether a TCP connection to address:port opens within 3 seconds (a dropped SYN does not)."""
    try:
        with socket.create_connection((address, port), timeout=3):
            return True
    except OSError:
        return False


@dataclass
class Run:
    returncode: int
    output: str

    @property
    def recap(self) -> dict[str, int]:
        found = RECAP.findall(self.output)
        assert found, "no PLAY RECAP in the output:\n" + self.output[-3000:]
        _, ok, changed, unreachable, failed = found[-1]
        return {"ok": int(ok), "changed": int(changed), "unreachable": int(unreachable), "failed": int(failed)}


@dataclass
class Deployment:
    client: docker.DockerClient
    container: docker.models.containers.Container
    address: str
    tmp: Path
    env: dict[str, str]
    inventory: Path
    certificate: Path
    first_run: Run | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"https://{self.address}"

    def playbook(self, env: dict[str, str] | None = None) -> Run:
        result = subprocess.run(
            [VENV_BIN / "ansible-playbook", "-i", self.inventory, "site.yml"], cwd=ANSIBLE_DIR,
            env=env or self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        (self.tmp / f"playbook-{time.monotonic_ns()}.log").write_text(result.stdout)
        return Run(result.returncode, result.stdout)

    def sh(self, command: str, check: bool = True) -> str:
        """A command on the target, as its root (the operator)."""
        code, output = self.container.exec_run(["sh", "-c", command])
        text = output.decode(errors="replace")
        if check:
            assert code == 0, f"{command} failed ({code}):\n{text}"
        return text

    def get(self, session: requests.Session, path: str, **kwargs) -> requests.Response:
        return session.get(self.url + path, verify=str(self.certificate), timeout=30, **kwargs)


def start_target(client: docker.DockerClient, run_id: str, network, volume) -> docker.models.containers.Container:
    """The target host: systemd as PID 1 (boot.sh mounts its own writable cgroups), every capability
    the engine may grant (a Docker engine runs inside), its /var/lib/docker on a volume so that the
    inner engine's overlay2 does not sit on overlayfs."""
    api = client.api
    host_config = api.create_host_config(
        cap_add=["ALL"], cap_drop=["SYS_RESOURCE"],  # this machine's engine may not grant SYS_RESOURCE
        security_opt=["seccomp=unconfined", "apparmor=unconfined"],
        device_cgroup_rules=["a *:* rwm"], cgroupns="private",
        tmpfs={"/run": "", "/run/lock": ""},
        binds={str(TARGET_CONTEXT / "boot.sh"): {"bind": "/boot.sh", "mode": "ro"},
               volume.name: {"bind": "/var/lib/docker", "mode": "rw"}},
        network_mode=network.name)
    # the CLI's --security-opt systempaths=unconfined: the inner engine writes /proc/sys
    host_config.update({"MaskedPaths": [], "ReadonlyPaths": []})
    created = api.create_container(
        TARGET_IMAGE, name=f"tre-ansible-target-{run_id}", hostname="tre-target",
        labels={LABEL: "ansible", "tre.test.run": run_id}, entrypoint=["/bin/sh", "/boot.sh"],
        host_config=host_config, stop_signal="SIGRTMIN+3")
    api.start(created["Id"])
    container = client.containers.get(created["Id"])
    # A host's devtmpfs has the loop devices the encrypted volume's loop file needs; a container's
    # /dev does not, so make their nodes (the device cgroup rule above allows them).
    container.exec_run(["sh", "-c", "[ -e /dev/loop-control ] || mknod -m 660 /dev/loop-control c 10 237; "
                                    "for i in $(seq 0 255); do [ -e /dev/loop$i ] || mknod -m 660 /dev/loop$i b 7 $i; done"])
    return container


@pytest.fixture(scope="module")
def deployment(docker_client, tmp_path_factory) -> Iterator[Deployment]:
    client = docker_client
    run_id = uuid.uuid4().hex[:8]
    tmp = tmp_path_factory.mktemp("ansible")
    CACHE.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    network = volume = container = provider = None
    try:
        with timed(timings, "release files (wheelhouse, image archive, target image)"):
            house = wheelhouse(tmp)
            archive = image_archive(client)
            target_image(client)
        network = client.networks.create(f"tre-ansible-{run_id}", driver="bridge",
                                         labels={LABEL: "ansible", "tre.test.run": run_id})
        volume = client.volumes.create(f"tre-ansible-{run_id}-docker", labels={LABEL: "ansible", "tre.test.run": run_id})
        with timed(timings, "target boot"):
            container = start_target(client, run_id, network, volume)
            key = tmp / "id_ed25519"
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
            container.exec_run(["sh", "-c", f"echo '{key.with_suffix('.pub').read_text().strip()}' "
                                            ">/root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys"])
            container.reload()
            address = container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
            network.reload()
            gateway = network.attrs["IPAM"]["Config"][0]["Gateway"]
            wait_for(lambda: answers(address, 22), 60, "the target's SSH")
        provider = OpenIDProvider(free_port_on(gateway), f"https://{address}", CLIENT_SECRET, gateway)
        inventory = tmp / "inventory.yml"
        # host variables: they take precedence over group_vars/all.yml's defaults
        inventory.write_text(yaml.safe_dump({"tre": {"hosts": {address: {
            "ansible_user": "root", "ansible_ssh_private_key_file": str(key),
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
            "tre_public_hostname": address, "tre_tls_self_signed": True, "tre_instance": "deploytest",
            "tre_oidc_issuer": provider.issuer, "tre_oidc_client_id": "tre-hub",
            "tre_oidc_login_service": "Test institution", "tre_mem_limit": "1G",
            # This machine's kernel is built without device-mapper (no dm-crypt, no modules), so no
            # LUKS volume can be opened here, in a container or not: the test uses the role's other
            # method, ext4's native encryption (fscrypt), on the same kind of loop file.
            "tre_storage_method": "fscrypt", "tre_storage_size": "3G",
            # quota filesystems are reserved on that volume as they are made: test-sized
            "tre_project_quota": "256M", "tre_home_quota": "128M", "tre_tmp_quota": "64M",
            "tre_storage_reserve": "512M",
        }}}}))
        env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", "ANSIBLE_FORCE_COLOR": "0",
               "ANSIBLE_NOCOLOR": "1",
               # secrets from the controller's environment, as an operator without a vault file would
               "TRE_OIDC_CLIENT_SECRET": CLIENT_SECRET, "TRE_CRYPT_KEY": os.urandom(32).hex(),
               "TRE_STORAGE_KEY": os.urandom(64).hex(), "TRE_BACKUP_KEY": os.urandom(32).hex(),
               "TRE_HUB_DB_PASSWORD": "hub-" + uuid.uuid4().hex, "TRE_DB_PASSWORD": "tre/" + uuid.uuid4().hex + "$",
               "TRE_WHEELHOUSE": str(house), "TRE_IMAGE_ARCHIVE": str(archive)}
        deployment = Deployment(client, container, address, tmp, env, inventory, tmp / "tre.crt", timings=timings)
        with timed(timings, "first playbook run"):
            deployment.first_run = deployment.playbook()
        if deployment.first_run.returncode == 0:
            deployment.certificate.write_text(deployment.sh("cat /etc/nginx/tls/tre.crt"))
        yield deployment
    finally:
        print("[ansible deploy] timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()), file=sys.stderr)
        if provider:
            provider.close()
        for leftover in client.containers.list(all=True, filters={"label": f"tre.test.run={run_id}"}):
            leftover.remove(force=True, v=True)
        for leftover in client.volumes.list(filters={"label": f"tre.test.run={run_id}"}):
            leftover.remove(force=True)
        for leftover in client.networks.list(filters={"label": f"tre.test.run={run_id}"}):
            leftover.remove()


def test_first_run_installs_the_tre_behind_https_and_only_22_and_443_answer(deployment):
    run = deployment.first_run
    assert run.returncode == 0, run.output[-6000:]
    assert run.recap["failed"] == 0 and run.recap["changed"] > 0
    health = deployment.get(requests.Session(), "/hub/health")
    assert health.status_code == 200
    # the certificate is checked (the test trusts exactly this one), and plain HTTP is not served
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(deployment.url + "/hub/health", timeout=10)
    assert answers(deployment.address, 443) and answers(deployment.address, 22)
    for inside_only in (80, 8000, 8001, 8081, 5432):
        assert not answers(deployment.address, inside_only), f"port {inside_only} answers from outside"
    # both databases are PostgreSQL, the settings are root's only
    assert deployment.sh("stat -c %a /etc/tre/tre.env").strip() == "600"
    databases = deployment.sh("runuser -u postgres -- psql -qAtc 'select datname from pg_database'").split()
    assert {"jupyterhub", "tre"} <= set(databases)
    assert deployment.sh("systemctl is-active tre-hub tre-firewall tre-host-firewall nginx docker tre-backup.timer").split() == ["active"] * 6


def sign_in(deployment: Deployment, username: str, password: str) -> requests.Session:
    """The whole OpenID sign-in as a browser does it, over HTTPS to the target: hub, provider's login
    form, back to the hub with a code, home page."""
    session = requests.Session()
    page = deployment.get(session, "/hub/oauth_login")
    action = re.search(r'action="(/interaction/[\w-]+/login)"', page.text)
    assert action, page.text[:800]
    origin = re.match(r"https?://[^/]+", page.url).group(0)
    home = session.post(origin + action.group(1), data={"login": username, "password": password},
                        verify=str(deployment.certificate), timeout=60)
    assert home.status_code == 200 and home.url == f"{deployment.url}/hub/home", (home.status_code, home.url, home.text[:800])
    return session


def test_alice_signs_in_through_her_provider_over_https_and_starts_her_workspace(deployment):
    assert deployment.first_run.returncode == 0, "the first run failed"
    # the catalogue's people, projects and data: the test's part, as an operator would load them
    with timed(deployment.timings, "demo catalogue in the target"):
        deployment.sh("tre demo init --scale 0.05")
    with timed(deployment.timings, "sign-in and workspace start"):
        session = sign_in(deployment, "alice", "alice-pass")
        home = deployment.get(session, "/hub/home")
        assert 'data-server-name="cardio-risk"' in home.text
        deployment.get(session, "/hub/spawn/alice/cardio-risk")

        def lab_ready() -> bool:
            page = deployment.get(session, "/user/alice/cardio-risk/lab")
            return page.status_code == 200 and page.url.endswith("/user/alice/cardio-risk/lab") and "JupyterLab" in page.text
        wait_for(lab_ready, WORKSPACE_SECONDS, "alice's workspace, through nginx")
    running = deployment.sh("docker ps --filter label=tre.instance=deploytest --format '{{.Names}} {{.Image}}'")
    assert "cardio-risk" in running and "alice" in running, running
    rows = [json.loads(line) for line in deployment.sh("tre audit export 2>/dev/null").splitlines() if line.startswith("{")]
    assert any(row["actor"] == "alice" and row["action"] == "login" and row["details"]["method"] == "oidc" for row in rows)


def test_second_run_changes_nothing(deployment):
    assert deployment.first_run.returncode == 0, "the first run failed"
    with timed(deployment.timings, "second playbook run"):
        run = deployment.playbook()
    assert run.returncode == 0, run.output[-6000:]
    changed = [line for line in run.output.splitlines() if line.startswith("changed:")]
    assert run.recap["changed"] == 0, "\n".join(changed) + run.output[-3000:]


def test_a_missing_variable_stops_the_run_before_any_change_and_names_it(deployment):
    env = {k: v for k, v in deployment.env.items() if k != "TRE_DB_PASSWORD"}
    with timed(deployment.timings, "run with a missing variable"):
        run = deployment.playbook(env)
    assert run.returncode != 0
    assert "Required variable tre_db_password is missing or empty" in run.output, run.output[-3000:]
    assert run.recap["changed"] == 0 and run.recap["failed"] == 1
    assert "Install the base packages" not in run.output  # the install play never began


def test_state_and_postgresql_are_on_the_encrypted_volume(deployment):
    assert deployment.first_run.returncode == 0, "the first run failed"
    for folder in ("/var/lib/tre", "/var/lib/postgresql/15/main"):
        source = deployment.sh(f"findmnt --noheadings --output SOURCE,FSTYPE --target {folder}").split()
        assert source[0].startswith("/dev/loop") and source[1] == "ext4", (folder, source)
    assert deployment.sh("runuser -u postgres -- psql -Atc 'SHOW data_directory'").strip() == "/var/lib/postgresql/15/main"
    probe, control = f"tre-probe-{uuid.uuid4().hex}", f"tre-control-{uuid.uuid4().hex}"
    deployment.sh(f"echo {probe} >/var/lib/tre/probe.txt && echo {control} >/srv/tre-storage/control.txt && sync")
    assert deployment.sh("cat /var/lib/tre/probe.txt").strip() == probe  # readable through the mount
    found = deployment.sh(f"grep -c -a -e {probe} /var/lib/tre-storage.img; grep -c -a -e {control} "
                          "/var/lib/tre-storage.img; true", check=False).split()
    assert found[1] != "0", "the control is not found: the search cannot see the volume's clear text"
    assert found[0] == "0", "the probe written to /var/lib/tre is in the volume's file in clear"
    deployment.sh("rm /var/lib/tre/probe.txt /srv/tre-storage/control.txt")


def test_backup_then_restore_puts_back_databases_and_egress_store(deployment):
    assert deployment.first_run.returncode == 0, "the first run failed"
    deployment.sh("tre demo init --scale 0.05 >/dev/null 2>&1 || true; mkdir -p /var/lib/tre/egress/released "
                  "&& echo 'reviewed result' >/var/lib/tre/egress/released/marker.txt")
    with timed(deployment.timings, "backup"):
        backup = deployment.sh("systemctl start tre-backup.service && ls -d /var/backups/tre/2* | tail -1").strip()
    assert set(deployment.sh(f"ls {backup}").split()) == {
        "SHA256SUMS", "egress.tar.gz.gpg", "jupyterhub.dump.gpg", "tre.dump.gpg"}
    # encrypted: neither pg_dump's header nor the tar's content reads in clear, GnuPG names AES-256
    assert deployment.sh(f"cat {backup}/*.gpg | grep -c -a -e PGDMP -e 'reviewed result'; true", check=False).strip() == "0"
    packets = deployment.sh(f"gpg --batch --list-packets {backup}/tre.dump.gpg </dev/null 2>&1; true", check=False)
    assert ":symkey enc packet:" in packets and "cipher 9," in packets, packets  # RFC 4880: 9 is AES-256
    # after the backup: a project suspended, a released file lost
    deployment.sh("tre projects suspend cardio-risk --as steward --reason 'restore test'")
    deployment.sh("rm /var/lib/tre/egress/released/marker.txt")
    assert "suspended" in deployment.sh("tre catalogue projects")
    # a damaged backup is refused and changes nothing
    damaged = deployment.sh(f"cp -a {backup} {backup}-damaged && echo x >>{backup}-damaged/tre.dump.gpg "
                            f"&& tre-restore {backup}-damaged; echo rc=$?", check=False)
    assert "damaged" in damaged and "rc=1" in damaged
    # so is one restored with another key (a backup of another host, or a wrong vault entry)
    other_key = deployment.sh(f"od -An -N32 -tx1 /dev/urandom | tr -d ' \\\\n' >/root/other.key && tre-restore {backup} /root/other.key; "
                              "echo rc=$?", check=False)
    assert "does not decrypt" in other_key and "rc=1" in other_key
    assert "suspended" in deployment.sh("tre catalogue projects")
    with timed(deployment.timings, "restore"):
        deployment.sh(f"tre-restore {backup}")
    projects = deployment.sh("tre catalogue projects")
    assert "suspended" not in projects and "cardio-risk" in projects
    assert deployment.sh("cat /var/lib/tre/egress/released/marker.txt").strip() == "reviewed result"
    wait_for(lambda: deployment.get(requests.Session(), "/hub/health").status_code == 200, 120, "the hub after the restore")


def test_ansible_lint_production_profile_passes():
    result = subprocess.run([VENV_BIN / "ansible-lint", "--offline"], cwd=ANSIBLE_DIR, capture_output=True, text=True,
                            env={**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", "NO_COLOR": "1"})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "Profile 'production' was required, and it passed" in result.stdout + result.stderr
