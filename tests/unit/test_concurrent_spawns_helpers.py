"""The concurrent-spawn benchmark's pure helpers: its catalogue loads through the catalogue's own
loader, its percentiles and ideal time are the hand-computed ones, its memory is docker stats'."""

from __future__ import annotations

import datetime as dt

import pytest

from benchmarks.concurrent_spawns import (
    busy_fraction,
    host_cpu_ticks,
    benchmark_catalogue,
    cpu_seconds,
    ideal_storm_seconds,
    memory_in_use,
    percentile,
    project_of,
)
from datasets import catalogue as cat
from datasets.access import AccessRefused, workspace_access


def test_people_are_put_in_projects_of_ten_each_granted_two_datasets():
    catalogue = benchmark_catalogue(23, dt.date(2026, 11, 23))
    assert [p.slug for p in catalogue.projects] == ["bench-p1", "bench-p2", "bench-p3"]
    assert [len(p.members) for p in catalogue.projects] == [10, 10, 3]
    assert project_of(22) == "bench-p3"
    assert all({g.dataset for g in p.grants} == {"claims", "hospital_stays"} for p in catalogue.projects)


def test_the_catalogue_loads_and_each_person_may_start_their_project(catalogue_url, tmp_path):
    from tre_core.db import session_scope

    today = dt.date(2026, 11, 23)
    with session_scope(catalogue_url) as session:  # the demo catalogue, whose datasets it grants
        cat.load_catalogue(session, benchmark_catalogue(12, today), tmp_path / "data")
    with session_scope(catalogue_url) as session:
        access = workspace_access(session, "bench012", "bench-p2", today)
        assert {d.slug for d in access.datasets} == {"claims", "hospital_stays"}
        with pytest.raises(AccessRefused):
            workspace_access(session, "bench012", "bench-p1", today)


def test_percentiles_are_nearest_rank():
    values = [float(v) for v in range(1, 21)]  # 1..20
    assert percentile(values, 0.5) == 10
    assert percentile(values, 0.95) == 19
    assert percentile([7.0], 0.95) == 7
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_the_ideal_storm_is_the_cpu_work_spread_over_the_cores():
    assert ideal_storm_seconds(50, 2.4, 2) == pytest.approx(60.0)


def test_memory_and_cpu_are_read_as_docker_stats_reads_them():
    v2 = {"memory_stats": {"usage": 120 * 2**20, "stats": {"inactive_file": 12 * 2**20}},
          "cpu_stats": {"cpu_usage": {"total_usage": 2_500_000_000}}}
    v1 = {"memory_stats": {"usage": 120 * 2**20, "stats": {"total_inactive_file": 20 * 2**20}}}
    assert memory_in_use(v2) == 108 * 2**20
    assert memory_in_use(v1) == 100 * 2**20
    assert cpu_seconds(v2) == 2.5


def test_host_cpu_is_read_from_proc_stat_idle_and_iowait_counting_as_free():
    before = host_cpu_ticks("cpu  100 0 100 700 100 0 0 0 0 0")
    after = host_cpu_ticks("cpu  400 0 200 800 100 0 0 0 0 0")
    assert before == (200, 1000) and after == (600, 1500)
    assert busy_fraction(before, after) == pytest.approx(0.8)
    busy, total = host_cpu_ticks()  # this machine's own
    assert 0 <= busy <= total
