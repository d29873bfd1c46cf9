"""The package index with a real hub and real workspaces: pip installs approved packages from it and
nothing else, a request is approved and installed end to end, and the index survives a hub restart.
The upstream index is a throwaway one of the test's own (tests/package_upstream.py) on the host's
loopback, which workspaces cannot reach: whatever they install came through the TRE's index."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest

from tests.integration.conftest import Hub
from tests.package_upstream import throwaway_upstream, upstream_index


FETCH_NOT_APPROVED = """
import os, urllib.error, urllib.request
page = os.environ["TRE_PACKAGE_INDEX_URL"] + "/simple/tre-throwaway-dep/"
try:
    urllib.request.urlopen(urllib.request.Request(page, headers={"Authorization": "token " + os.environ["JUPYTERHUB_API_TOKEN"]}))
except urllib.error.HTTPError as error:
    print(error.code, error.read().decode())
"""


def run(container, command: str) -> tuple[int, str]:
    result = container.exec_run(["sh", "-c", command], user="1000:100")
    return result.exit_code, result.output.decode("utf-8", "replace")


@pytest.fixture(scope="module")
def index_hub(docker_client):
    upstream = Path(tempfile.mkdtemp(prefix="tre-upstream-"))
    throwaway_upstream(upstream)
    with upstream_index(upstream) as url:
        hub = Hub(docker_client, settings={"TRE_PACKAGE_UPSTREAM_URL": url})
        try:
            hub.tre("packages", "policy", "cardio-risk", "any-approved-on-request", "--as", "admin")
            hub.tre("packages", "allowlist", "tre-throwaway==1.0", "--as", "admin")
            hub.start_process()
            yield hub
        finally:
            hub.close()


@pytest.fixture(scope="module")
def alice(index_hub):
    return index_hub.login("alice")


def test_pip_installs_an_approved_package_from_the_index_and_nothing_else(index_hub, alice):
    container = index_hub.start(alice, "alice", "cardio-risk")
    code, out = run(container, "pip config list; echo $PIP_INDEX_URL")
    gateway = index_hub.client.networks.get(f"tre-{index_hub.instance}-cardio-risk").attrs["IPAM"]["Config"][0]["Gateway"]
    assert f"@{gateway}:{index_hub.env['TRE_PACKAGE_INDEX_PORT']}/simple/" in out, out
    code, out = run(container, "pip install --user tre-throwaway==1.0 && python -c 'import tre_throwaway; print(tre_throwaway.VERSION)'")
    assert code == 0 and out.strip().endswith("1.0"), out
    # the same package from a virtual environment of the project's, in /project
    code, out = run(container, "python -m venv /project/venv && /project/venv/bin/pip install tre-throwaway==1.0 "
                               "&& /project/venv/bin/python -c 'import tre_throwaway; print(tre_throwaway.VERSION)'")
    assert code == 0 and out.strip().endswith("1.0"), out


def test_an_unapproved_package_fails_with_how_to_ask(index_hub, alice):
    container = index_hub.start(alice, "alice", "cardio-risk")
    # in the upstream index, but not approved: the workspace has no way to it
    code, out = run(container, "pip install --user -vv tre-throwaway-dep")
    assert code != 0 and "No matching distribution found for tre-throwaway-dep" in out, out
    assert "tre packages request tre-throwaway-dep" in out, out  # the index's 404, as pip logs it
    result = container.exec_run(["python", "-c", FETCH_NOT_APPROVED], user="1000:100")
    out = result.output.decode()
    assert out.startswith("404 ") and "tre packages request tre-throwaway-dep" in out and "catalogue" in out, out


def test_request_approval_and_install_end_to_end(index_hub, alice):
    container = index_hub.start(alice, "alice", "cardio-risk")
    code, out = run(container, "tre packages request tre-throwaway --version 1.1 --reason 'the newer survival helpers'")
    assert code == 0, out
    request_id = re.search(r"Request #(\d+)", out).group(1)
    shown = index_hub.tre("packages", "show", request_id, "--as", "admin")
    assert "tre-throwaway-dep" in shown and "BSD-3-Clause" in shown, shown
    index_hub.tre("packages", "approve", request_id, "--as", "admin")
    code, out = run(container, "tre packages status")
    assert f"#{request_id}  tre-throwaway==1.1  published" in out, out
    code, out = run(container, "pip install --user tre-throwaway==1.1 && python -c 'import tre_throwaway, "
                               "tre_throwaway_dep; print(tre_throwaway.VERSION)'")
    assert code == 0 and out.strip().endswith("1.1"), out
    listed = index_hub.tre("packages", "list")
    assert re.search(rf"tre-throwaway +│ 1\.1 .*│ request #{request_id} ", listed), listed
    # removal stops new installs (what is installed stays)
    index_hub.tre("packages", "remove", "tre-throwaway-dep", "--reason", "superseded", "--as", "admin")
    code, out = run(container, "pip download --no-deps -d /tmp/x tre-throwaway-dep")
    assert code != 0, out


def test_a_hub_restart_keeps_the_index_and_installed_packages(index_hub, alice):
    container = index_hub.start(alice, "alice", "cardio-risk")
    code, out = run(container, "pip install --user tre-throwaway==1.0 && ([ -x /project/venv/bin/python ] || "
                               "python -m venv /project/venv) && /project/venv/bin/pip install tre-throwaway==1.0")
    assert code == 0, out
    index_hub.stop(alice, "alice", "cardio-risk")
    index_hub.stop_process()
    index_hub.start_process()
    alice = index_hub.login("alice")
    container = index_hub.start(alice, "alice", "cardio-risk")
    code, out = run(container, "python -c 'import tre_throwaway' && "
                               "/project/venv/bin/python -c 'import tre_throwaway' && "
                               "pip download --no-deps -d /tmp/y tre-throwaway==1.0 && ls /tmp/y")
    assert code == 0 and "tre_throwaway-1.0-py3-none-any.whl" in out, out
