"""Each process wall's probe fails against a container deliberately started without that wall, so a
"blocked" in test_attacks.py is the wall's doing, not a probe that cannot fail: the attack suite's
process probes in one weakened container (no cap drop, no no-new-privileges, no CPU limit, a host
block device, no seccomp profile) and, beside it, in a container hardened as the spawner's plan hardens a workspace."""

from __future__ import annotations

import json
import os
import secrets

import pytest

from spawner.plan import Hardening
from tests.integration import attack_suite

pytestmark = pytest.mark.integration

IMAGE = "tre/singleuser:latest"
PROBES = ["capabilities", "no-new-privileges-outside-wrapper", "process-vm", "device-nodes", "cpu-limit",
          "setuid-binaries"]
HOST_DEVICE = next(p for p in ("/dev/vda", "/dev/sda", "/dev/nvme0n1", "/dev/xvda", "/dev/loop0") if os.path.exists(p))


def suite(container, *, wrapper: bool) -> dict[str, dict]:
    skip = [a for a in attack_suite.ATTACK_IDS if a not in PROBES]
    command = ["python3", "-c", attack_suite.__loader__.get_source(attack_suite.__name__),
               json.dumps({"skip": skip, "cpu_limit": 1.0})]
    result = container.exec_run((["python3", "-m", "tre_seccomp"] if wrapper else []) + command,
                                user="1000:100", demux=True)
    stdout, stderr = (part.decode(errors="replace") if part else "" for part in result.output)
    assert result.exit_code == 0, stderr
    found = {entry["attack"]: entry for entry in json.loads(stdout)}
    assert not [e for e in found.values() if e.get("error")], found
    return found


@pytest.fixture(scope="module")
def containers(docker_client):
    labels = {"tre.managed": "true", "tre.instance": f"test-weak-{secrets.token_hex(3)}", "tre.component": "probe"}
    hardening = Hardening()
    common = {"command": ["sleep", "infinity"], "detach": True, "labels": labels, "network_mode": "none",
              "user": "1000:100", "tmpfs": dict(hardening.tmpfs)}
    made = []
    try:
        made.append(docker_client.containers.run(
            IMAGE, name=f"tre-{labels['tre.instance']}-hardened", read_only=hardening.read_only_root,
            cap_drop=list(hardening.drop_capabilities), security_opt=["no-new-privileges:true"],
            nano_cpus=10**9, pids_limit=hardening.pids_limit, **common))
        made.append(docker_client.containers.run(
            # no Docker seccomp profile either: it refuses process_vm_* itself, as the server's filter does
            IMAGE, name=f"tre-{labels['tre.instance']}-weakened", devices=[f"{HOST_DEVICE}:{HOST_DEVICE}:r"],
            security_opt=["seccomp=unconfined"], **common))
        yield made[0], made[1]
    finally:
        for container in made:
            container.remove(force=True)


def test_the_hardened_container_blocks_every_probe(containers):
    hardened, _ = containers
    found = suite(hardened, wrapper=True)
    assert sorted(found) == sorted(PROBES)
    assert all(e["blocked"] for e in found.values()), json.dumps(found, indent=1)


def test_no_new_privileges_is_read_from_the_containers_own_settings(containers):
    """The engine's setting, and a process the engine starts outside the wrapper (docker exec)."""
    hardened, weakened = containers
    for container, expected in ((hardened, True), (weakened, False)):
        container.reload()
        options = container.attrs["HostConfig"]["SecurityOpt"] or []
        assert any(o.startswith("no-new-privileges") for o in options) is expected, options
        status = container.exec_run(["cat", "/proc/self/status"], user="1000:100").output.decode()
        assert ("NoNewPrivs:\t1" in status) is expected, status
        assert ("CapBnd:\t0000000000000000" in status) is expected, status


def test_each_probe_catches_its_missing_wall(containers):
    _, weakened = containers
    wrapped = suite(weakened, wrapper=True)  # as researcher code runs: under the server's filter
    for probe in ("capabilities", "no-new-privileges-outside-wrapper", "device-nodes", "cpu-limit"):
        assert not wrapped[probe]["blocked"], f"{probe} did not notice: {wrapped[probe]['evidence']}"
    assert HOST_DEVICE in wrapped["device-nodes"]["evidence"]
    assert "'max" in wrapped["cpu-limit"]["evidence"]
    bare = suite(weakened, wrapper=False)  # without the seccomp filter either
    assert not bare["process-vm"]["blocked"], bare["process-vm"]["evidence"]
    assert "bytes" in bare["process-vm"]["evidence"]
    assert not bare["setuid-binaries"]["blocked"], bare["setuid-binaries"]["evidence"]
