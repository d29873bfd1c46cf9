"""The spawner prepares a project's folders as root, inside folders researchers write to: it must
never follow a link they planted there, and two (project, user) pairs never share a container."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pytest

from spawner.docker_adapter import UnsafeWorkspaceFolder, prepare_directories
from spawner.plan import Mount, WorkspacePlan, container_name, project_network

# As root (as in CI) the folders go to the workspace user, as on a real host; otherwise to us.
UID, GID = (1000, 100) if os.geteuid() == 0 else (os.getuid(), os.getgid())


def plan_in(root: Path) -> WorkspacePlan:
    project = root / "cardio-risk"
    shared, home = project / "shared", project / "homes" / "alice"
    return WorkspacePlan(
        username="alice", project="cardio-risk", image="tre/singleuser:latest", container_name="c",
        mounts=(Mount(shared, PurePosixPath("/project"), read_only=False),
                Mount(home, PurePosixPath("/home/alice"), read_only=False)),
        network=project_network("demo", "cardio-risk"), home=PurePosixPath("/home/alice"),
        working_dir=PurePosixPath("/project"), uid=UID, gid=GID, env={}, labels={},
        mem_limit="1G", cpu_limit=1.0, writable_root=root, writable_dirs=(shared, shared / "outputs", home))


def test_the_folders_are_created_owned_by_the_workspace_user(tmp_path):
    plan = plan_in(tmp_path)
    prepare_directories(plan)
    for folder in plan.writable_dirs:
        assert folder.is_dir() and not folder.is_symlink()
        assert (folder.stat().st_uid, folder.stat().st_gid) == (plan.uid, plan.gid)


@pytest.mark.parametrize("planted", ["link_to_a_host_folder", "dangling_link", "file"])
def test_a_link_or_file_in_place_of_outputs_refuses_the_start_and_touches_nothing(tmp_path, planted):
    plan = plan_in(tmp_path / "workspaces")
    prepare_directories(plan)
    outputs = tmp_path / "workspaces" / "cardio-risk" / "shared" / "outputs"
    outputs.rmdir()
    victim = tmp_path / "host-etc"
    victim.mkdir()
    before = victim.stat()
    if planted == "link_to_a_host_folder":
        outputs.symlink_to(victim)
    elif planted == "dangling_link":
        outputs.symlink_to(tmp_path / "nowhere")
    else:
        outputs.write_text("not a folder")
    with pytest.raises(UnsafeWorkspaceFolder) as refusal:
        prepare_directories(plan)
    assert refusal.value.folder == "/project/outputs"
    after = victim.stat()
    assert (after.st_uid, after.st_gid, after.st_mode) == (before.st_uid, before.st_gid, before.st_mode)
    assert not (tmp_path / "nowhere").exists()


def test_a_link_in_place_of_the_project_folder_is_refused_too(tmp_path):
    plan = plan_in(tmp_path / "workspaces")
    (tmp_path / "workspaces" / "cardio-risk").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "workspaces" / "cardio-risk" / "shared").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UnsafeWorkspaceFolder):
        prepare_directories(plan)
    assert not (tmp_path / "elsewhere" / "outputs").exists()


def test_names_that_run_together_get_different_containers():
    assert container_name("demo", "cardio", "risk-alice") != container_name("demo", "cardio-risk", "alice")
    assert container_name("demo", "cardio-risk", "alice") == container_name("demo", "cardio-risk", "alice")
