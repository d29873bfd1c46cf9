"""ProjectSwarmSpawner's configuration, without an engine: the catalogue settings are shared with
ProjectSpawner under one section, the swarm's own become the site the renderer reads."""

from __future__ import annotations

from traitlets.config import Config

from spawner.project_spawner import ProjectSpawner
from spawner.swarm_adapter import SwarmSite
from spawner.swarm_spawner import ProjectSwarmSpawner


def test_catalogue_settings_are_one_section_for_both_spawners():
    config = Config()
    config.CatalogueWorkspace.catalogue_url = "postgresql+psycopg://tre@db/tre"
    config.CatalogueWorkspace.pids_limit = 300
    for spawner in (ProjectSpawner(config=config), ProjectSwarmSpawner(config=config)):
        assert spawner.catalogue_url == "postgresql+psycopg://tre@db/tre"
        assert spawner.pids_limit == 300


def test_swarm_settings_become_the_site():
    config = Config()
    config.ProjectSwarmSpawner.dataset_label_prefix = "hdh.data."
    config.ProjectSwarmSpawner.placement_constraints = ["node.role==worker"]
    config.ProjectSwarmSpawner.encrypted_network = False
    spawner = ProjectSwarmSpawner(config=config)
    assert spawner.site == SwarmSite(dataset_label_prefix="hdh.data.", extra_constraints=("node.role==worker",),
                                     encrypted_network=False)


def test_defaults_keep_workspaces_unpublished_encrypted_and_never_restarted():
    spawner = ProjectSwarmSpawner()
    assert spawner.use_internal_ip is True  # reached over the project network, no port on the nodes
    assert spawner.site.encrypted_network is True
    assert spawner.remove is True
    assert spawner.placement_timeout == 60
