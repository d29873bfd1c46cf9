"""Quotas held by the kernel: a workspace writing past its project's /project, its home or its
/tmp gets "No space left on device", while another project's workspace keeps writing, the host's
disk does not move and the hub keeps answering; researchers and stewards see usage and quota."""

from __future__ import annotations

import os

import pytest
from bs4 import BeautifulSoup

from tre_core.db import session_scope
from datasets.models import Project
from tre_core.settings import TRESettings
from tests.integration.conftest import Hub

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
CARDIO_QUOTA = 48 * MiB  # set in the catalogue: wins over the 96M default below


@pytest.fixture(scope="module")
def quota_hub(docker_client):
    hub = Hub(docker_client, scale=0.05, settings={
        "TRE_PROJECT_QUOTA": "96M", "TRE_HOME_QUOTA": "64M", "TRE_TMP_QUOTA": "24M"})
    try:
        with session_scope(TRESettings(home=hub.home, database_url=hub.env.get("TRE_DATABASE_URL")).catalogue_url) as s:
            s.get(Project, "cardio-risk").project_quota = "48M"
        hub.start_process()
        yield hub
    finally:
        hub.close()


def shell(container, script: str) -> tuple[int, str]:
    result = container.exec_run(["sh", "-c", script], user="1000:100")
    return result.exit_code, result.output.decode(errors="replace")


def fill(container, path: str, mib: int) -> tuple[int, str]:
    return shell(container, f"dd if=/dev/zero of={path} bs=1M count={mib} conv=fsync 2>&1")


def test_a_full_workspace_is_stopped_by_the_kernel_and_nothing_else_notices(quota_hub):
    alice, bob = quota_hub.login("alice"), quota_hub.login("bob")
    cardio = quota_hub.start(alice, "alice", "cardio-risk")
    diabetes = quota_hub.start(bob, "bob", "diabetes-outcomes")
    try:
        image = quota_hub.home / "workspaces" / "cardio-risk" / "storage" / "shared.ext4"
        reserved = image.stat().st_blocks * 512
        # the catalogue's quota, reserved on the host's disk at once (and an extent-map block or two)
        assert CARDIO_QUOTA <= reserved < CARDIO_QUOTA + MiB

        # /project: the catalogue's 48M, whatever is asked for
        status, said = fill(cardio, "/project/runaway.bin", 200)
        assert status != 0 and "No space left on device" in said, said
        status, said = shell(cardio, "df -B1 --output=size,used /project | tail -1")
        size, used = map(int, said.split())
        # ext4 keeps its journal and inode tables inside the quota: a few MiB of a small one
        assert 0.8 * CARDIO_QUOTA < size <= CARDIO_QUOTA and used > size - 2 * MiB, said
        # ... and it stayed inside its image: the host's disk did not lose a byte more
        assert image.stat().st_blocks * 512 == reserved and image.stat().st_size == CARDIO_QUOTA

        # home (64M default) and /tmp (24M tmpfs) each stop at their own size
        status, said = fill(cardio, "$HOME/runaway.bin", 200)
        assert status != 0 and "No space left on device" in said, said
        status, said = fill(cardio, "/tmp/runaway.bin", 100)
        assert status != 0 and "No space left on device" in said, said
        status, said = shell(cardio, "df -B1 --output=size /tmp | tail -1")
        assert int(said) == 24 * MiB, said

        # the control: another project's workspace keeps writing, past what cardio-risk could hold
        status, said = fill(diabetes, "/project/results.bin", 60)
        assert status == 0, said
        assert shell(diabetes, "stat -c %s /project/results.bin")[1].strip() == str(60 * MiB)
        # a full project does not stop its own people from reading, nor the hub from answering
        assert shell(cardio, "ls /project")[0] == 0

        assert alice.get(f"{quota_hub.url}/hub/health").ok
        home = BeautifulSoup(alice.get(f"{quota_hub.url}/hub/home").text, "html.parser")
        line = home.select_one('tr[data-server-name="cardio-risk"] .storage').get_text(" ", strip=True)
        assert "48.0 MiB" in line and "64.0 MiB" in line, line

        # the researcher's projects page: usage and quota of their project
        page = BeautifulSoup(alice.get(f"{quota_hub.url}/services/catalogue/projects").text, "html.parser")
        row = page.select_one("#project-cardio-risk .storage")
        assert int(row["data-project-quota"]) == CARDIO_QUOTA and int(row["data-project-used"]) > 0.8 * CARDIO_QUOTA

        # the steward: every project's
        steward = quota_hub.login("steward")
        page = BeautifulSoup(steward.get(f"{quota_hub.url}/services/catalogue/steward").text, "html.parser")
        rows = {r["data-slug"]: r for r in page.select("#storage .project-storage")}
        assert int(rows["cardio-risk"]["data-project-used"]) > 0.8 * CARDIO_QUOTA
        assert 60 * MiB <= int(rows["diabetes-outcomes"]["data-project-used"]) < 96 * MiB
        assert int(rows["diabetes-outcomes"]["data-project-quota"]) == 96 * MiB
    finally:
        quota_hub.stop(alice, "alice", "cardio-risk")
        quota_hub.stop(bob, "bob", "diabetes-outcomes")


def test_the_next_start_finds_the_same_filesystem_and_files(quota_hub):
    """The image stays mounted between starts and is not made again: a full project's files are
    still there, and deleting one gives room back."""
    alice = quota_hub.login("alice")
    folder = quota_hub.home / "workspaces" / "cardio-risk" / "shared"
    assert os.path.ismount(folder)
    cardio = quota_hub.start(alice, "alice", "cardio-risk")
    try:
        assert shell(cardio, "test -f /project/runaway.bin && echo kept")[1].strip() == "kept"
        assert shell(cardio, "rm /project/runaway.bin && echo 'room again' > /project/note.txt")[0] == 0
    finally:
        quota_hub.stop(alice, "alice", "cardio-risk")
