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


def test_a_dataset_the_swarm_cannot_place_is_refused_before_any_network_is_made(monkeypatch):
    """A version that cannot be a node label is a refusal in words, with its audit row (here the
    refusal the spawner would raise), and the swarm is not asked for anything: no network, no hub
    attachment left behind."""
    import asyncio
    from types import SimpleNamespace

    from spawner import swarm_adapter
    from tests.unit.test_swarm_adapter import dataset, plan

    unplaceable = plan(dataset("claims", "2024/1"))
    spawner = ProjectSwarmSpawner(hub_container="hub")
    spawner.user, spawner.orm_spawner = SimpleNamespace(name="alice"), SimpleNamespace(name="cardio-risk", server=None)
    refused = []

    async def planned_workspace():
        return None, None, unplaceable

    async def refuse(refusal, error=None):
        refused.append((refusal.reason.value, refusal.params, type(error).__name__))
        return RuntimeError("refused")

    def engine_touched(*args, **kwargs):
        raise AssertionError("the swarm was asked to make a network")

    monkeypatch.setattr(spawner, "planned_workspace", planned_workspace)
    monkeypatch.setattr(spawner, "refuse", refuse)
    monkeypatch.setattr(swarm_adapter, "ensure_overlay_network", engine_touched)
    try:
        asyncio.run(spawner.start())
    except RuntimeError as error:
        assert str(error) == "refused"
    else:
        raise AssertionError("the start was not refused")
    assert refused == [("no_node_for_datasets", {"project": "cardio-risk", "datasets": "claims 2024/1"},
                        "UnplaceableDataset")]
