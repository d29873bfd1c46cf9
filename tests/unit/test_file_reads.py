"""What a workspace may show of a file in the browser (images/singleuser/tre_read_policy.py), and the
hub's record of each read against a person's daily volume (hub/file_reads.py), on both databases."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import pickle
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from datasets.audit import AuditAction, verify
from tre_core.db import session_scope
from datasets.models import AuditEvent, FileReadDay

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "images" / "singleuser"))
from tre_read_policy import FileKind, classify, negotiate  # noqa: E402

from hub.file_reads import record_file_read  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40
CSV = b"age,sex,count\n40,F,12\n"


def parquet_bytes() -> bytes:
    buffer = io.BytesIO()
    pd.DataFrame({"a": [1, 2, 3]}).to_parquet(buffer)
    return buffer.getvalue()


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("claims.csv", CSV)
    return buffer.getvalue()


@pytest.mark.parametrize(("name", "head", "kind"), [
    ("analysis.ipynb", b'{"cells": []}', FileKind.NOTEBOOK),
    ("table.csv", CSV, FileKind.TEXT),
    ("notes.md", "Données de santé é".encode(), FileKind.TEXT),
    ("figure.png", PNG, FileKind.IMAGE),
    ("photo.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 20, FileKind.IMAGE),
    # by name alone
    ("x.parquet", CSV, FileKind.DATA),
    ("x.pkl", b"(lp0\nI1\na.", FileKind.DATA),  # a protocol-0 pickle is printable text
    ("x.sqlite", CSV, FileKind.DATA),
    ("x.tar.gz", CSV, FileKind.DATA),
    # by content alone: data under a text or image name
    ("renamed.csv", None, FileKind.DATA),
    ("renamed.txt", None, FileKind.DATA),
    ("renamed.png", CSV, FileKind.DATA),
    ("no-name", b"\x00\x01\x02binary", FileKind.DATA),
])
def test_a_file_is_shown_only_when_its_name_and_its_bytes_agree(name, head, kind):
    assert classify(name, head if head is not None else parquet_bytes()[:8192]) is kind


@pytest.mark.parametrize("make", [parquet_bytes, zip_bytes, lambda: gzip.compress(CSV),
                                  lambda: pickle.dumps({"a": 1}), lambda: b"SQLite format 3\x00" + b"\x00" * 90])
def test_data_formats_are_refused_under_a_csv_name(make):
    assert classify("results.csv", make()[:8192]) is FileKind.DATA


def test_a_utf8_character_cut_by_the_sniff_window_is_still_text():
    head = ("a" * 8190 + "é").encode()[:8191]
    assert classify("t.txt", head) is FileKind.TEXT


def test_refusals_follow_the_browsers_language():
    assert negotiate("fr-FR,fr;q=0.9,en;q=0.8") == "fr"
    assert negotiate("en-GB,fr;q=0.5") == "en"
    assert negotiate("de-DE") == "en"


TODAY = dt.date(2026, 12, 4)


def read(session, size, *, outcome="read", person="alice", limit=1000, today=TODAY, path="outputs/t.csv"):
    return record_file_read(session, person, "cardio-risk", path=path, size=size, sha256="a" * 64,
                            outcome=outcome, kind="text", daily_limit=limit, today=today)


def test_reads_add_up_until_the_daily_threshold_then_the_stewards_are_alerted_once(catalogue_url):
    with session_scope(catalogue_url) as session:
        assert read(session, 600).allowed
        assert read(session, 400).allowed  # exactly at the threshold
        blocked = read(session, 1)
        assert not blocked.allowed and blocked.read_today == 1000
        assert blocked.alert is not None  # the first read past it alerts
        again = read(session, 1)
        assert not again.allowed and again.alert is None  # once a day
        assert read(session, 1, today=TODAY + dt.timedelta(days=1)).allowed  # a new day
        assert read(session, 1, person="bob").allowed  # another person
    with session_scope(catalogue_url) as session:
        actions = [e.action for e in session.scalars(select(AuditEvent).order_by(AuditEvent.seq))
                   if e.action.startswith("workspace.")]
        assert actions == ["workspace.file.read", "workspace.file.read", "workspace.file.refused",
                           "workspace.reads.blocked", "workspace.file.refused", "workspace.file.read",
                           "workspace.file.read"]
        alert = session.scalars(select(AuditEvent).where(
            AuditEvent.action == AuditAction.WORKSPACE_READS_BLOCKED.value)).one()
        assert alert.actor == "alice" and alert.project == "cardio-risk"
        assert alert.details["stewards_alerted"] == ["steward"] and alert.details["read_today"] == 1000
        first = session.scalars(select(AuditEvent).where(AuditEvent.action == "workspace.file.read")).first()
        assert first.details == {"path": "outputs/t.csv", "size": 600, "sha256": "a" * 64, "kind": "text"}
        day = session.get(FileReadDay, ("alice", TODAY))
        assert (day.bytes_read, day.reads) == (1000, 2) and day.blocked_at is not None
        assert verify(session).ok


def test_a_refusal_is_on_the_record_and_counts_nothing(catalogue_url):
    with session_scope(catalogue_url) as session:
        verdict = read(session, 10**9, outcome="refused-kind", path="x.parquet")
        assert not verdict.allowed and verdict.read_today == 0
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "workspace.file.refused")).one()
        assert event.details["reason"] == "kind" and event.details["path"] == "x.parquet"
