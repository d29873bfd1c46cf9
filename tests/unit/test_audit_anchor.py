"""Signed checkpoints anchor the audit log: every tamper, the cut tail with a rewritten head that
the chain alone cannot see included, is named by ``tre audit verify``."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, select, update
from typer.testing import CliRunner

from datasets import anchor, audit
from tre_core import process
from tre_core.cli import app
from tre_core.db import session_scope
from datasets.models import AuditEvent, AuditHead
from tests.unit.test_audit import write_events

runner = CliRunner()


@pytest.fixture
def fresh_log(catalogue_url):
    """An empty audit log, as on a new installation: the demo catalogue's load writes rows of its
    own (one per member and grant), and these tests count rows from the first."""
    with session_scope(catalogue_url) as session:
        session.execute(delete(AuditEvent))
        session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=0, hash=audit.GENESIS))


@pytest.fixture
def tre(catalogue_url, fresh_log, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TRE_HOME", str(tmp_path))
    monkeypatch.setenv("TRE_DATABASE_URL", catalogue_url)
    monkeypatch.setattr(process, "_context", {})  # the command sets it for the whole process
    return lambda *args: runner.invoke(app, list(args))


def checkpoints(tmp_path: Path) -> Path:
    return anchor.checkpoints_path(tmp_path)


def anchored_log(tre, catalogue_url, rows: int = 5) -> None:
    """``rows`` events, a checkpoint, two more events and a second checkpoint (8 + 2 rows in all)."""
    write_events(catalogue_url, rows)
    assert tre("audit", "checkpoint").exit_code == 0
    write_events(catalogue_url, 2)
    assert tre("audit", "checkpoint").exit_code == 0


def verified(tre) -> tuple[int, str]:
    result = tre("audit", "verify")
    return result.exit_code, result.output


def test_an_untouched_anchored_log_verifies_and_lists_its_checkpoints(tre, catalogue_url, tmp_path):
    anchored_log(tre, catalogue_url)
    code, output = verified(tre)
    assert code == 0 and "intact: 9 rows. 2 signed checkpoint(s) agree." in output, output
    listed = tre("audit", "checkpoints").output
    assert "command" in listed and str(checkpoints(tmp_path)) in listed
    first, second = anchor.read_checkpoints(checkpoints(tmp_path))
    assert (first["checkpoint"], first["rows"], second["checkpoint"], second["rows"]) == (1, 5, 2, 8)


def test_the_key_is_kept_0600_outside_the_database(tre, catalogue_url, tmp_path):
    anchored_log(tre, catalogue_url)
    key = tmp_path / "secrets" / anchor.KEY_NAME
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    with session_scope(catalogue_url) as session:
        stored = json.dumps([e.details for e in session.scalars(select(AuditEvent))])
    assert "PRIVATE" not in stored and key.read_text()[:40] not in stored


def test_an_edited_row_is_named(tre, catalogue_url):
    anchored_log(tre, catalogue_url)
    with session_scope(catalogue_url) as session:
        session.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(actor="mallory"))
    code, output = verified(tre)
    assert code == 1 and "broken at row 3" in output and "changed" in output


def test_a_deleted_row_is_named(tre, catalogue_url):
    anchored_log(tre, catalogue_url)
    with session_scope(catalogue_url) as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq == 2))
    code, output = verified(tre)
    assert code == 1 and "broken at row 2" in output


def _cut_tail(catalogue_url: str, keep: int, *, rewrite_head: bool) -> None:
    with session_scope(catalogue_url) as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq > keep))
        if rewrite_head:
            last = session.get(AuditEvent, keep)
            session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=keep, hash=last.hash))


def test_a_cut_tail_is_named(tre, catalogue_url):
    anchored_log(tre, catalogue_url)
    _cut_tail(catalogue_url, 6, rewrite_head=False)
    code, output = verified(tre)
    assert code == 1 and "rows 7 to 8 were deleted after checkpoint 2" in output, output


def test_a_cut_tail_with_a_rewritten_head_is_named(tre, catalogue_url):
    """The attack the chain alone misses: the chain verifies, the checkpoint does not agree."""
    anchored_log(tre, catalogue_url)
    _cut_tail(catalogue_url, 6, rewrite_head=True)
    with session_scope(catalogue_url) as session:
        assert audit.verify(session).ok  # what `tre audit verify` said before checkpoints
    code, output = verified(tre)
    assert code == 1 and "the log was cut: rows 7 to 8" in output and "head was rewritten" in output, output


def test_a_tail_rewritten_to_the_same_length_is_named(tre, catalogue_url):
    anchored_log(tre, catalogue_url)
    _cut_tail(catalogue_url, 6, rewrite_head=True)
    write_events(catalogue_url, 3)  # rows 7, 8, 9 again, with other content
    code, output = verified(tre)
    assert code == 1 and "row 8 is not the one checkpoint 2 signed" in output, output


def _rewrite_file(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def test_a_forged_checkpoint_is_named(tre, catalogue_url, tmp_path):
    """Someone without the key appends a checkpoint that blesses a shortened log."""
    anchored_log(tre, catalogue_url)
    path = checkpoints(tmp_path)
    lines = path.read_text().splitlines()
    last = json.loads(lines[-1])
    forged = {**last, "checkpoint": 3, "rows": 4, "previous": anchor._line_digest(lines[-1])}
    forged["signature"] = __import__("base64").b64encode(
        Ed25519PrivateKey.generate().sign(anchor._signed_part(forged))).decode()
    _rewrite_file(path, [*lines, json.dumps(forged)])
    code, output = verified(tre)
    assert code == 1 and "checkpoint 3 is forged" in output, output


def test_an_altered_checkpoint_is_named_forged(tre, catalogue_url, tmp_path):
    anchored_log(tre, catalogue_url)
    path = checkpoints(tmp_path)
    lines = path.read_text().splitlines()
    changed = {**json.loads(lines[0]), "rows": 3}
    _rewrite_file(path, [json.dumps(changed), *lines[1:]])
    code, output = verified(tre)
    assert code == 1 and "checkpoint 1 is forged" in output, output


def test_a_removed_checkpoint_is_named(tre, catalogue_url, tmp_path):
    anchored_log(tre, catalogue_url)
    assert tre("audit", "checkpoint").exit_code == 0
    path = checkpoints(tmp_path)
    lines = path.read_text().splitlines()
    _rewrite_file(path, [lines[0], lines[2]])
    code, output = verified(tre)
    assert code == 1 and "checkpoint 2 was removed" in output, output


def test_removing_the_newest_checkpoint_is_named_by_the_log(tre, catalogue_url, tmp_path):
    anchored_log(tre, catalogue_url)
    path = checkpoints(tmp_path)
    _rewrite_file(path, path.read_text().splitlines()[:1])
    code, output = verified(tre)
    assert code == 1 and "checkpoint 2, recorded in the log at row 9, was removed" in output, output


def test_the_interval_writer_anchors_only_a_log_that_grew(catalogue_url, fresh_log, tmp_path):
    secrets = tmp_path / "secrets"
    write_events(catalogue_url, 3)
    first = anchor.checkpoint_if_due(catalogue_url, secrets, 0)
    assert first is not None and first["rows"] == 3 and first["reason"] == "interval"
    assert anchor.checkpoint_if_due(catalogue_url, secrets, 0) is None  # only its own record since
    write_events(catalogue_url, 1)
    assert anchor.checkpoint_if_due(catalogue_url, secrets, 3600) is None  # not due yet
    assert anchor.checkpoint_if_due(catalogue_url, secrets, 0)["rows"] == 5


def test_the_checkpoints_file_is_append_only(tmp_path):
    path = tmp_path / "anchor" / "audit-checkpoints.jsonl"
    why_not = anchor.make_append_only(path)
    if os.geteuid() != 0:
        pytest.fail("run as root (as ./setup.sh test does): setting the append-only flag needs CAP_LINUX_IMMUTABLE")
    assert why_not is None, why_not
    try:
        assert anchor.is_append_only(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o644 and path.stat().st_uid == 0
        with path.open("a") as stream:
            stream.write("{}\n")  # appending works
        with pytest.raises(PermissionError):
            path.open("w")  # rewriting does not, not even for root
        with pytest.raises(PermissionError):
            path.unlink()
    finally:
        _clear_append_only(path)  # so that pytest can remove tmp_path


def _clear_append_only(path: Path) -> None:
    import fcntl
    import struct

    fd = os.open(path, os.O_RDONLY)
    try:
        flags = struct.unpack("i", fcntl.ioctl(fd, anchor.FS_IOC_GETFLAGS, struct.pack("i", 0)))[0]
        fcntl.ioctl(fd, anchor.FS_IOC_SETFLAGS, struct.pack("i", flags & ~anchor.FS_APPEND_FL))
    finally:
        os.close(fd)


def test_every_release_writes_a_checkpoint(catalogue_url, tmp_path):
    from tests.unit.egress_fixtures import make_airlock, submitted_request
    from tests.unit.test_egress_requests import approve_by

    airlock = make_airlock(catalogue_url, tmp_path)
    request = submitted_request(airlock)
    approve_by(airlock, request, "carol", "dave")
    airlock.release("carol", request)
    (written,) = anchor.read_checkpoints(checkpoints(tmp_path))
    assert written["reason"] == "release"
    with session_scope(catalogue_url) as session:
        released = session.scalars(select(AuditEvent).where(AuditEvent.action == "egress.released")).one()
        result = anchor.verify(session, checkpoints(tmp_path), anchor.public_key(tmp_path / "secrets"))
    assert written["rows"] == released.seq and written["head"] == released.hash
    assert result.ok, result.problems


def test_the_register_page_publishes_the_checkpoints_and_the_key(catalogue_url, fresh_log, tmp_path, monkeypatch):
    import asyncio
    import threading
    import urllib.request

    from bs4 import BeautifulSoup

    from hub.catalogue_service.app import Site, make_app
    from tests.unit.test_egress_service import free_port

    monkeypatch.setenv("TRE_HOME", str(tmp_path))
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "test-only")
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://127.0.0.1:9/hub/api")
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/services/catalogue/")
    write_events(catalogue_url, 4)
    anchor.write_checkpoint(catalogue_url, tmp_path / "secrets", checkpoints(tmp_path), reason="command")
    app = make_app(Site(catalogue_url, prefix="/services/catalogue/", hub_prefix="/hub/"))
    port, loop, started = free_port(), asyncio.new_event_loop(), threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        server = app.listen(port, "127.0.0.1")
        loop.call_soon(started.set)
        loop.run_forever()
        server.stop()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(10)
    base = f"http://127.0.0.1:{port}/services/catalogue/register"
    try:
        request = urllib.request.Request(base, headers={"Accept-Language": "fr"})
        page = BeautifulSoup(urllib.request.urlopen(request, timeout=10).read(), "html.parser")
        published = urllib.request.urlopen(base + "/audit-checkpoints.jsonl", timeout=10).read()
        key = urllib.request.urlopen(base + "/audit-key.pub", timeout=10).read()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
    assert "numéro 1, 4 entrées" in page.find(id="newest-checkpoint").get_text()
    assert published == checkpoints(tmp_path).read_bytes()
    assert key == (tmp_path / "secrets" / f"{anchor.KEY_NAME}.pub").read_bytes()
