"""The extraction hub service's pass: it queues an extract for every grant in force, starts the
builds as processes of their own (never in the pass itself), at most TRE_EXTRACTION_WORKERS at a
time, and the next passes start the rest, until every grant has its ready extract on disk."""

from __future__ import annotations

import time

from sqlalchemy import select

from datasets.models import Extract, ExtractStatus, Grant
from hub import extraction
from tre_core.db import session_scope
from tre_core.settings import TRESettings


def test_passes_queue_every_grants_extract_and_build_them_in_child_processes(catalogue_url, tmp_path, monkeypatch):
    monkeypatch.setenv("TRE_HOME", str(tmp_path))  # the catalogue's dataset folders are in tmp_path/data
    monkeypatch.setenv("TRE_DATABASE_URL", catalogue_url)
    settings = TRESettings()
    assert settings.extraction_workers == 1
    builds = extraction.Builds()
    started = extraction.pass_once(settings, builds)
    with session_scope(catalogue_url) as session:
        grants = session.scalars(select(Grant)).all()
        queued = session.scalars(select(Extract)).all()
        assert len(queued) == len(grants) >= 3  # one per grant in force, asked for in the pass
    assert len(started) == 1 and set(builds.running) == set(started)  # running beside the pass, one at a time
    deadline = time.monotonic() + 240
    while builds.running or extraction.pass_once(settings, builds):
        assert time.monotonic() < deadline, "the builds did not finish"
        for child in list(builds.running.values()):
            child.wait(timeout=120)
        builds.reap()
    with session_scope(catalogue_url) as session:
        extracts = session.scalars(select(Extract)).all()
        assert {e.status for e in extracts} == {ExtractStatus.READY}, [(e.id, e.status, e.error) for e in extracts]
        assert {(e.project_id, e.dataset_slug) for e in extracts} == {(g.project_slug, g.dataset_slug) for g in grants}
        paths = [e.path for e in extracts]
    assert all((settings.extracts_root / path).is_dir() for path in paths)
    assert extraction.pass_once(settings, builds) == []  # nothing more to do
