"""The audit log is append-only in effect: any edit, deletion or insertion is found and named."""

from __future__ import annotations

import json
import threading

from sqlalchemy import delete, text, update

from datasets import audit
from datasets.audit import AuditAction
from tre_core.db import session_scope
from datasets.models import AuditEvent


def write_events(url: str, count: int) -> None:
    for n in range(count):
        with session_scope(url) as session:
            audit.record(session, "alice", AuditAction.WORKSPACE_START, project="cardio-risk",
                         details={"mounts": ["/data/claims"], "n": n})


def check(url: str) -> audit.Verification:
    with session_scope(url) as session:
        return audit.verify(session)


def loaded(url: str) -> int:
    """The rows the demo catalogue's load wrote (one per member and grant, through the acts)."""
    return check(url).rows


def test_an_untouched_log_verifies(catalogue_url):
    before = loaded(catalogue_url)
    write_events(catalogue_url, 5)
    result = check(catalogue_url)
    assert result.ok and result.rows == before + 5


def test_an_edited_row_is_named(catalogue_url):
    write_events(catalogue_url, 5)
    with session_scope(catalogue_url) as session:
        session.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(actor="mallory"))
    result = check(catalogue_url)
    assert not result.ok and result.first_bad_seq == 3 and "changed" in result.problem


def test_a_deleted_row_is_named(catalogue_url):
    write_events(catalogue_url, 5)
    with session_scope(catalogue_url) as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq == 2))
    result = check(catalogue_url)
    assert not result.ok and result.first_bad_seq == 2


def test_deleting_the_last_rows_is_found(catalogue_url):
    write_events(catalogue_url, 5)
    with session_scope(catalogue_url) as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq >= 4))
    result = check(catalogue_url)
    assert not result.ok and result.first_bad_seq == 4


def test_an_inserted_row_is_named(catalogue_url):
    write_events(catalogue_url, 3)
    with session_scope(catalogue_url) as session:
        # a forger renumbers rows 2.. to slip one in, copying the hashes they cannot recompute
        session.execute(text("UPDATE audit_events SET seq = seq + 100 WHERE seq >= 2"))
        session.execute(text("UPDATE audit_events SET seq = seq - 99 WHERE seq >= 100"))
        first = session.get(AuditEvent, 1)
        session.add(AuditEvent(seq=2, at=first.at, actor="mallory", action="login", project=None,
                               details={}, previous_hash=first.hash, hash="f" * 64))
    result = check(catalogue_url)
    assert not result.ok and result.first_bad_seq == 2


def test_concurrent_writers_keep_one_chain(catalogue_url):
    before = loaded(catalogue_url)
    threads = [threading.Thread(target=write_events, args=(catalogue_url, 10)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = check(catalogue_url)
    assert result.ok and result.rows == before + 40


def test_export_is_json_lines(catalogue_url):
    before = loaded(catalogue_url)
    write_events(catalogue_url, 2)
    with session_scope(catalogue_url) as session:
        lines = [audit.as_json_line(e) for e in audit.events(session)][before:]
    assert [json.loads(line)["seq"] for line in lines] == [before + 1, before + 2]
    assert json.loads(lines[0])["details"] == {"mounts": ["/data/claims"], "n": 0}


def test_a_name_longer_than_the_column_is_cut_and_kept_in_full(catalogue_url):
    from datasets import audit as audit_module
    from datasets.audit import AuditAction

    long_name = "x" * 300
    with session_scope(catalogue_url) as session:
        audit_module.record(session, long_name, AuditAction.LOGIN_FAILED, details={"method": "demo-password"})
    with session_scope(catalogue_url) as session:
        event = list(audit_module.events(session))[-1]
        assert event.actor == long_name[:64] and event.details["actor_in_full"] == long_name
        assert audit_module.verify(session).ok
