"""The egress review's acts on a real TRE database (SQLite and PostgreSQL) and real files: the
workflow rules, frozen files, path attacks, the signed release, the audit trail and the emails."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from datasets import audit
from tre_core.db import session_scope
from datasets.models import AuditEvent, Project
from egress_review import release
from egress_review.notify import smtp_sender
from egress_review.errors import BadInput, Forbidden, NotFound
from egress_review.store import sha256_of
from egress_review.errors import StateConflict
from egress_review.models import Decision, ExportRequest, RequestState, Review
from tests.unit.egress_fixtures import TABLE, make_airlock, submitted_request


@pytest.fixture
def airlock(catalogue_url, tmp_path):
    return make_airlock(catalogue_url, tmp_path)


def output_id(airlock, request: int, name: str = "table.csv") -> int:
    return next(f.id for f in airlock.get("alice", request).files if f.name == name)


def approve_by(airlock, request: int, *checkers: str) -> str:
    state = ""
    for checker in checkers:
        state = airlock.review(checker, request, {output_id(airlock, request): "approve"})
    return state


def actions(url: str, request: int) -> list[str]:
    with session_scope(url) as session:
        return [e.action for e in session.scalars(select(AuditEvent).order_by(AuditEvent.seq))
                if e.details.get("request") == request]


def test_a_request_from_draft_to_release_is_audited_act_by_act(airlock, catalogue_url):
    request = submitted_request(airlock)
    assert airlock.get("carol", request).state == "submitted"
    assert approve_by(airlock, request, "carol") == "partially_reviewed"
    assert approve_by(airlock, request, "dave") == "reviewed"
    assert airlock.release("carol", request) == ["table.csv"]
    view = airlock.get("alice", request)
    assert view.state == "released" and view.released == ["table.csv"]
    path = airlock.released_file("alice", request, "table.csv")
    assert path.read_text() == TABLE
    assert actions(catalogue_url, request) == [
        "egress.request.created", "egress.file.added", "egress.file.added", "egress.submitted", "egress.reviewed",
        "egress.reviewed", "egress.approved", "egress.released", "egress.downloaded"]
    with session_scope(catalogue_url) as session:
        assert audit.verify(session).ok


def test_each_person_lists_what_they_may_see_and_reads_no_more(airlock, catalogue_url):
    from egress_review import data_access as db

    submitted = submitted_request(airlock)
    draft = airlock.create("alice", "cardio-risk", "Not yet")
    (airlock.workspaces_root / "diabetes-outcomes" / "shared" / "outputs" / "t.csv").write_text(TABLE)
    bobs = airlock.create("bob", "diabetes-outcomes", "Bob's draft")
    listed = {who: [r.id for r in airlock.list_requests(who)] for who in ("alice", "erin", "bob", "carol", "admin")}
    assert listed == {"alice": [draft, submitted], "erin": [draft, submitted],  # members see drafts
                      "bob": [bobs], "carol": [submitted],  # a checker: submitted, outside her ties
                      "admin": [bobs, draft, submitted]}
    # what is read from the database for a researcher is their projects' requests, not every project's
    with session_scope(catalogue_url) as session:
        read = db.requests_for(session, everything=False, projects={"diabetes-outcomes"}, submitted_outside=None,
                               author_not="bob")
        assert [r.id for r in read] == [bobs]
        for_checker = db.requests_for(session, everything=False, projects=set(), author_not="carol",
                                      submitted_outside={"diabetes-outcomes"})
        assert [r.id for r in for_checker] == [submitted]


def test_no_one_reviews_their_own_or_their_projects_request(airlock):
    request = submitted_request(airlock)
    with pytest.raises(Forbidden, match="member of project cardio-risk"):  # erin: checker and member
        approve_by(airlock, request, "erin")
    with pytest.raises(Forbidden, match="Only output checkers"):
        approve_by(airlock, request, "admin")
    with pytest.raises(NotFound):  # bob does not even see another project's request
        approve_by(airlock, request, "bob")


def test_an_expired_accreditation_cannot_review(airlock, catalogue_url):
    from datasets.models import Person
    import datetime as dt

    request = submitted_request(airlock)
    with session_scope(catalogue_url) as session:
        session.get(Person, "dave").checker_accredited_until = dt.date(2026, 11, 22)
    with pytest.raises(NotFound):
        approve_by(airlock, request, "dave")
    assert airlock.get("alice", request).state == "submitted"


def test_the_same_checker_cannot_review_twice_and_two_reviews_are_needed(airlock):
    request = submitted_request(airlock)
    approve_by(airlock, request, "carol")
    with pytest.raises(StateConflict, match="second review by the same person"):
        approve_by(airlock, request, "carol")
    with pytest.raises(StateConflict, match="partially_reviewed"):
        airlock.release("carol", request)  # one review is not enough
    assert airlock.get("carol", request).state == "partially_reviewed"


def test_a_project_cannot_ask_for_fewer_than_two_reviews(airlock, catalogue_url):
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError):
        with session_scope(catalogue_url) as session:
            session.get(Project, "cardio-risk").egress_reviews_required = 1
    with session_scope(catalogue_url) as session:
        session.get(Project, "cardio-risk").egress_reviews_required = 3
    request = submitted_request(airlock)
    assert approve_by(airlock, request, "carol", "dave") == "partially_reviewed"
    assert airlock.get("alice", request).reviews_required == 3


def test_reviews_are_blind_until_both_are_in(airlock):
    request = submitted_request(airlock)
    table = output_id(airlock, request)
    airlock.review("carol", request, {table: "approve"}, [(table, "Fine, counts are large.", False)])
    dave_sees = airlock.get("dave", request)
    assert [f.reviews for f in dave_sees.files if f.id == table] == [[]]
    assert dave_sees.comments == []
    assert airlock.get("alice", request).comments == []  # private, and the review goes on
    airlock.review("dave", request, {table: "approve"})
    carol_sees = airlock.get("carol", request)
    assert {r["reviewer"] for f in carol_sees.files if f.id == table for r in f.reviews} == {"carol", "dave"}
    assert [c["text"] for c in airlock.get("dave", request).comments] == ["Fine, counts are large."]
    assert airlock.get("alice", request).comments == []  # private to checkers, for good


def test_return_replace_and_resubmit_resets_the_replaced_files_reviews(airlock, tmp_path):
    request = submitted_request(airlock)
    table = output_id(airlock, request)
    airlock.review("carol", request, {table: "changes_requested"}, [(table, "Round to 5.", True)])
    airlock.review("dave", request, {table: "approve"})
    airlock.return_("carol", request, "Please round the counts.")
    seen = airlock.get("alice", request)
    assert seen.state == "returned"
    assert {c["text"] for c in seen.comments} == {"Round to 5.", "Please round the counts."}
    (tmp_path / "workspaces/cardio-risk/shared/outputs/table.csv").write_text("region,readmissions\n11,40\n")
    airlock.replace_file("alice", request, table)
    assert airlock.get("carol", request).files[0].reviews == []  # dave's approval went with the old file
    airlock.comment("alice", request, "Rounded to 5 as asked.")
    assert airlock.submit("alice", request) == "submitted"
    assert approve_by(airlock, request, "carol", "dave") == "reviewed"
    airlock.release("dave", request)
    assert airlock.released_file("alice", request, "table.csv").read_text() == "region,readmissions\n11,40\n"


def test_an_approval_holds_over_a_resubmission_without_changes(airlock):
    request = submitted_request(airlock)
    approve_by(airlock, request, "carol", "dave")
    airlock.return_("carol", request, "Say which years.")
    airlock.comment("alice", request, "2024 and 2025.")
    assert airlock.submit("alice", request) == "reviewed"


def test_submitted_files_are_frozen_and_the_released_one_is_the_reviewed_one(airlock, tmp_path):
    request = submitted_request(airlock)
    reviewed = airlock.get("carol", request).files[0].sha256
    assert reviewed == sha256_of(tmp_path / "workspaces/cardio-risk/shared/outputs/table.csv")
    (tmp_path / "workspaces/cardio-risk/shared/outputs/table.csv").write_text("region,readmissions\n11,3\n")
    name, frozen = airlock.frozen_file("carol", request, output_id(airlock, request))
    assert frozen.read_text() == TABLE
    with pytest.raises(Forbidden):  # admins oversee requests, but the content is for those who work on it
        airlock.frozen_file("admin", request, output_id(airlock, request))
    with pytest.raises(NotFound):
        airlock.frozen_file("bob", request, output_id(airlock, request))
    approve_by(airlock, request, "carol", "dave")
    airlock.release("carol", request)
    assert sha256_of(airlock.released_file("alice", request, "table.csv")) == reviewed
    with pytest.raises(StateConflict, match="released"):  # frozen means no more edits either
        airlock.add_file("alice", request, "outputs/code.py", "Other", "output")


def test_supporting_files_are_never_released(airlock):
    request = submitted_request(airlock)
    approve_by(airlock, request, "carol", "dave")
    airlock.release("carol", request)
    folder = airlock.store.releases / str(request)
    assert sorted(p.name for p in folder.iterdir()) == ["decision.json", "decision.json.sig", "table.csv"]
    with pytest.raises(NotFound):
        airlock.released_file("alice", request, "code.py")


def test_the_signed_decision_record_verifies_and_tampering_fails(airlock, tmp_path):
    request = submitted_request(airlock)
    approve_by(airlock, request, "carol", "dave")
    airlock.release("carol", request)
    folder, key = airlock.store.releases / str(request), release.public_key(tmp_path / "secrets")
    assert release.verify_release(folder, key).ok
    record = json.loads((folder / "decision.json").read_text())
    assert record["files"][0]["sha256"] == sha256_of(folder / "table.csv")
    assert {r["reviewer"] for r in record["files"][0]["reviews"]} == {"carol", "dave"}
    # The automatic checks' results travel with the signed record (the table passes every rule).
    assert {c["rule"] for c in record["files"][0]["checks"]} >= {"threshold", "microdata"}
    assert {c["status"] for c in record["files"][0]["checks"]} == {"pass"} and record["released_by"] == "carol"
    assert oct(os.stat(tmp_path / "secrets" / release.KEY_NAME).st_mode & 0o777) == "0o600"
    (folder / "table.csv").write_text("region,readmissions\n11,1\n")
    assert "differs" in release.verify_release(folder, key).problem
    (folder / "decision.json").write_text(json.dumps({**record, "released_by": "mallory"}))
    assert "signature" in release.verify_release(folder, key).problem


def test_two_checkers_releasing_at_once_make_one_release(airlock, catalogue_url):
    request = submitted_request(airlock)
    approve_by(airlock, request, "carol", "dave")
    airlock.release("carol", request)
    with pytest.raises(StateConflict, match="released"):
        airlock.release("dave", request)
    assert actions(catalogue_url, request).count("egress.released") == 1


def test_two_checkers_releasing_at_the_same_moment_make_one_release(airlock, catalogue_url):
    import threading

    request = submitted_request(airlock)
    approve_by(airlock, request, "carol", "dave")
    start, outcomes = threading.Barrier(2), {}

    def release_as(checker):
        start.wait()
        try:
            outcomes[checker] = airlock.release(checker, request)
        except StateConflict as conflict:
            outcomes[checker] = conflict

    threads = [threading.Thread(target=release_as, args=(c,)) for c in ("carol", "dave")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(type(o).__name__ for o in outcomes.values()) == ["StateConflict", "list"]
    assert actions(catalogue_url, request).count("egress.approved") == 1
    assert actions(catalogue_url, request).count("egress.released") == 1


def test_only_the_project_downloads_released_files(airlock, catalogue_url):
    request = submitted_request(airlock)
    approve_by(airlock, request, "carol", "dave")
    airlock.release("carol", request)
    assert airlock.released_file("erin", request, "table.csv").exists()
    with pytest.raises(Forbidden):
        airlock.released_file("carol", request, "table.csv")
    with pytest.raises(NotFound):
        airlock.released_file("bob", request, "table.csv")
    with pytest.raises(Forbidden):
        airlock.released_zip("admin", request)
    assert actions(catalogue_url, request).count("egress.downloaded") == 1


def test_a_request_cannot_be_submitted_without_context_and_controls(airlock, catalogue_url):
    request = airlock.create("alice", "cardio-risk", "Readmissions")
    airlock.add_file("alice", request, "outputs/table.csv", "Table 1", "output", context="Counts")
    with pytest.raises(BadInput, match="controls"):
        airlock.submit("alice", request)
    assert airlock.get("alice", request).state == "draft"
    assert actions(catalogue_url, request)[-1] == "egress.file.added"


def test_only_members_create_and_only_the_author_changes_a_request(airlock):
    with pytest.raises(Forbidden, match="not an active member"):
        airlock.create("bob", "cardio-risk", "Not mine")
    request = airlock.create("alice", "cardio-risk", "Readmissions")
    with pytest.raises(Forbidden, match="Only the author"):
        airlock.add_file("erin", request, "outputs/table.csv", "T", "output")
    with pytest.raises(Forbidden, match="Only the author"):
        airlock.withdraw("erin", request)
    airlock.withdraw("alice", request)
    assert airlock.get("erin", request).state == "withdrawn"


@pytest.mark.parametrize("attack, message", [
    ("../../diabetes-outcomes/shared/secret.csv", "leaves the project folder"),
    ("/etc/passwd", "not a path inside the project folder"),
    ("outputs/link-inside.csv", "symbolic link"),
    ("outputs/link-outside.csv", "symbolic link"),
    ("linked-folder/table.csv", "symbolic link"),
    ("outputs/hardlink.parquet", "hard link"),
    ("outputs/fifo", "not a regular file"),
    ("outputs/null", "not a regular file"),
    ("outputs", "is a folder"),
    ("outputs/big.csv", "over the limit"),
    ("outputs/missing.csv", "There is no file"),
])
def test_path_attacks_are_refused_with_a_clear_message(airlock, catalogue_url, tmp_path, attack, message):
    shared = tmp_path / "workspaces/cardio-risk/shared"
    (tmp_path / "workspaces/diabetes-outcomes/shared/secret.csv").write_text("patient_id\nx\n")
    (shared / "outputs/link-inside.csv").symlink_to(shared / "outputs/table.csv")
    (shared / "outputs/link-outside.csv").symlink_to(tmp_path / "data/claims/claims.parquet")
    (shared / "linked-folder").symlink_to(shared / "outputs")
    os.link(tmp_path / "data/claims/claims.parquet", shared / "outputs/hardlink.parquet")
    os.mkfifo(shared / "outputs/fifo")
    os.mknod(shared / "outputs/null", 0o600 | 0o020000, os.makedev(1, 3))  # a character device, /dev/null's
    (shared / "outputs/big.csv").write_text("x" * 10_001)
    request = airlock.create("alice", "cardio-risk", "Attacks")
    before = actions(catalogue_url, request)
    with pytest.raises(BadInput, match=message):
        airlock.add_file("alice", request, attack, "Table 1", "output")
    assert airlock.get("alice", request).files == [] and actions(catalogue_url, request) == before


def test_a_file_swapped_for_a_link_after_it_was_added_is_refused_at_submission(airlock, tmp_path):
    shared = tmp_path / "workspaces/cardio-risk/shared"
    request = airlock.create("alice", "cardio-risk", "Swap")
    airlock.add_file("alice", request, "outputs/table.csv", "T", "output", context="c", controls="k")
    (shared / "outputs/table.csv").unlink()
    (shared / "outputs/table.csv").symlink_to(tmp_path / "data/claims/claims.parquet")
    with pytest.raises(BadInput, match="symbolic link"):
        airlock.submit("alice", request)
    assert airlock.get("alice", request).state == "draft"


def test_the_request_size_limit(airlock, tmp_path):
    shared = tmp_path / "workspaces/cardio-risk/shared"
    for name in ("a.csv", "b.csv"):
        (shared / "outputs" / name).write_text("x" * 8_000)
    request = airlock.create("alice", "cardio-risk", "Big")
    for name in ("a.csv", "b.csv"):
        airlock.add_file("alice", request, f"outputs/{name}", "T", "output", context="c", controls="k")
    with pytest.raises(BadInput, match="over the limit of 15000"):
        airlock.submit("alice", request)


def test_orphans_in_the_store_are_swept_and_frozen_files_kept(airlock):
    request = submitted_request(airlock)
    orphan = airlock.store.objects / ("0" * 64)
    orphan.write_text("left by a crash")
    (airlock.store.objects / ".tmp-1-2").write_text("half a copy")
    long_ago = time.time() - 7 * 3600  # older than the sweep's grace period (see test_egress_replicas)
    for entry in airlock.store.objects.iterdir():
        os.utime(entry, (long_ago, long_ago))
    assert airlock.sweep_store() == 2
    assert not orphan.exists()
    assert airlock.frozen_file("carol", request, output_id(airlock, request))[1].exists()


def test_a_release_interrupted_after_approval_is_finished_at_start(airlock):
    request = submitted_request(airlock)
    approve_by(airlock, request, "carol", "dave")

    def approve_only(request_id):  # the service dies between the approval and the copy out
        raise SystemExit

    airlock._finish_leased = approve_only
    with pytest.raises(SystemExit):
        airlock.release("carol", request)
    del airlock._finish_leased
    assert airlock.get("alice", request).state == "approved"
    assert airlock.resume_releases() == [request]
    assert airlock.get("alice", request).state == "released"


def test_a_release_interrupted_after_approval_is_finished_by_a_retry_once(airlock):
    """Its copier gone (its lease with it), the request is approved and nobody is copying it: a
    checker's retry finishes it, on the record, instead of "released already"; a second retry is
    then "released already". Killed processes for real: tests/integration/test_faults.py."""
    request = submitted_request(airlock)
    approve_by(airlock, request, "carol", "dave")

    def approve_only(request_id):
        raise SystemExit

    airlock._finish_leased = approve_only
    with pytest.raises(SystemExit):
        airlock.release("carol", request)
    del airlock._finish_leased
    assert airlock.release("dave", request) == ["table.csv"]
    assert airlock.get("alice", request).state == "released"
    with pytest.raises(StateConflict, match="released already"):
        airlock.release("dave", request)
    with session_scope(airlock.url) as session:
        actions = [e.action for e in session.scalars(select(AuditEvent)) if e.details.get("request") == request]
    assert [a for a in actions if a in ("egress.approved", "egress.release.retried", "egress.released")] == [
        "egress.approved", "egress.release.retried", "egress.released"]


def test_the_waiting_counts(airlock):
    request = submitted_request(airlock)
    assert airlock.waiting_count("carol") == 1 and airlock.waiting_count("alice") == 0
    approve_by(airlock, request, "carol")
    assert airlock.waiting_count("carol") == 0 and airlock.waiting_count("dave") == 1
    approve_by(airlock, request, "dave")
    assert airlock.waiting_count("carol") == 1  # reviewed: a decision waits
    airlock.return_("dave", request, "Which years?")
    assert airlock.waiting_count("alice") == 1 and airlock.waiting_count("carol") == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_checkers_and_the_author_get_emails_through_a_real_smtp_server(catalogue_url, tmp_path):
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    received = []

    class Inbox(Message):
        def handle_message(self, message):
            received.append(message)

    port = free_port()
    server = Controller(Inbox(), hostname="127.0.0.1", port=port)
    server.start()
    try:
        airlock = make_airlock(catalogue_url, tmp_path, notify=smtp_sender("127.0.0.1", port, "tre@example.org"))
        request = submitted_request(airlock)
        approve_by(airlock, request, "carol", "dave")
        airlock.release("carol", request)
    finally:
        server.stop()
    to = [m["To"] for m in received]
    # one message per person (no checker sees the others' addresses); erin is a checker too, but a
    # member of the project: she is not asked to review it.
    assert sorted(to[:2]) == sorted(to[2:4]) == ["carol@example.org", "dave@example.org"]
    assert to[4:] == ["alice@example.org"]
    assert "released" in received[-1]["Subject"]


def test_a_mail_server_that_is_down_changes_nothing(catalogue_url, tmp_path):
    airlock = make_airlock(catalogue_url, tmp_path, notify=smtp_sender("127.0.0.1", free_port(), "tre@example.org"))
    request = submitted_request(airlock)
    assert airlock.get("alice", request).state == "submitted"


# --- after a security review: nothing unreleased leaves, independence holds whatever the status ---

def test_unreleased_files_are_read_only_by_the_reviewing_checkers_while_they_review(airlock, catalogue_url):
    request = submitted_request(airlock)
    code = output_id(airlock, request, "code.py")  # a supporting file: never released
    table = output_id(airlock, request)
    for member in ("alice", "erin"):  # the author, another member (and checker) of the project
        for file_id in (code, table):
            with pytest.raises(Forbidden, match="read only by the output checkers"):
                airlock.frozen_file(member, request, file_id)
    name, path = airlock.frozen_file("carol", request, table)
    assert name == "table.csv" and path.read_text() == TABLE
    with session_scope(catalogue_url) as session:
        reads = [e for e in session.scalars(select(AuditEvent)) if e.action == "egress.file.read"]
        assert [(e.actor, e.details["file"]) for e in reads] == [("carol", "table.csv")]
    approve_by(airlock, request, "carol", "dave")
    airlock.release("carol", request)
    with pytest.raises(Forbidden, match="only while it awaits its checkers"):
        airlock.frozen_file("carol", request, code)
    with pytest.raises(Forbidden):
        airlock.frozen_file("alice", request, code)  # released or not, supporting files stay in


def test_a_member_of_a_suspended_project_is_no_outside_checker(airlock, catalogue_url):
    from datasets.models import ProjectStatus

    request = submitted_request(airlock)
    with session_scope(catalogue_url) as session:
        session.get(Project, "cardio-risk").status = ProjectStatus.SUSPENDED
    with pytest.raises((Forbidden, NotFound)):
        approve_by(airlock, request, "erin")
    assert airlock.get("carol", request).state == "submitted"


def test_a_file_named_like_the_release_record_is_refused(airlock, tmp_path):
    outputs = tmp_path / "workspaces" / "cardio-risk" / "shared" / "outputs"
    (outputs / "decision.json").write_text("{}")
    request = airlock.create("alice", "cardio-risk", "Record")
    with pytest.raises(BadInput, match="release's own record"):
        airlock.add_file("alice", request, "outputs/decision.json", "Table 1", "output",
                         context="c", controls="c")


def test_a_review_of_a_file_replaced_since_it_was_seen_is_refused(airlock):
    request = submitted_request(airlock, supporting=False)
    table = output_id(airlock, request)
    seen = {table: airlock.get("carol", request).files[0].sha256}
    with pytest.raises(StateConflict, match="changed since you opened it"):
        airlock.review("carol", request, {table: "approve"}, seen={table: "0" * 64})
    assert airlock.review("carol", request, {table: "approve"}, seen=seen) == "partially_reviewed"


SMALL = "region,readmissions\n11,3\n84,37\n"  # a count of 3: the threshold rule fails it


def failing_request(airlock, tmp_path) -> tuple[int, int]:
    (tmp_path / "workspaces/cardio-risk/shared/outputs/small.csv").write_text(SMALL)
    request = airlock.create("alice", "cardio-risk", "Small counts")
    file_id = airlock.add_file("alice", request, "outputs/small.csv", "Table 2", "output",
                               context="Readmissions by region", controls="None")
    airlock.submit("alice", request)
    assert next(f for f in airlock.get("carol", request).files if f.id == file_id).checks[1]["status"] == "fail"
    return request, file_id


def test_a_fail_is_final_unless_a_checker_overrides_it_with_a_written_reason(airlock, catalogue_url, tmp_path):
    request, small = failing_request(airlock, tmp_path)
    with pytest.raises(BadInput, match="small.csv failed the automatic checks: a Fail is final unless you override"):
        airlock.review("carol", request, {small: "approve"})
    with pytest.raises(BadInput, match="override"):  # a blank reason is no reason
        airlock.review("carol", request, {small: "approve"}, overrides={small: "   "})
    assert airlock.get("carol", request).state == "submitted" and actions(catalogue_url, request)[-1] == \
        "egress.submitted"
    # Other decisions on a failed file need no reason.
    assert airlock.review("dave", request, {small: "changes_requested"}) == "partially_reviewed"


def test_an_overridden_fail_is_shown_to_the_other_checker_and_signed_into_the_record(airlock, catalogue_url,
                                                                                     tmp_path):
    request, small = failing_request(airlock, tmp_path)
    reason = "The 3 is the number of regions, not of people; agreed with the PI."
    assert airlock.review("carol", request, {small: "approve"}, overrides={small: reason}) == "partially_reviewed"
    assert airlock.review("dave", request, {small: "approve"}, overrides={small: "Region count, not people."}) \
        == "reviewed"
    seen_by_dave = next(f for f in airlock.get("dave", request).files if f.id == small).reviews
    assert {"reviewer": "carol", "override": reason}.items() <= next(
        r for r in seen_by_dave if r["reviewer"] == "carol").items()
    with session_scope(catalogue_url) as session:
        reviewed = [e.details for e in session.scalars(select(AuditEvent).where(
            AuditEvent.action == "egress.reviewed")) if e.details.get("request") == request]
    assert reviewed[0]["overrides"] == {str(small): reason}
    airlock.release("dave", request)
    folder = airlock.store.releases / str(request)
    assert release.verify_release(folder, release.public_key(tmp_path / "secrets")).ok
    record = json.loads((folder / release.RECORD).read_text())
    reviews = {r["reviewer"]: r for r in record["files"][0]["reviews"]}
    assert reviews["carol"]["override"] == reason and reviews["carol"]["decision"] == "approve"


def test_a_failed_file_approved_without_an_override_on_record_is_not_released(airlock, catalogue_url, tmp_path):
    """Approvals recorded before overrides existed (migration 0009a) do not release a failed file."""
    request, small = failing_request(airlock, tmp_path)
    with session_scope(catalogue_url) as session:
        for checker in ("carol", "dave"):
            session.add(Review(file_id=small, reviewer=checker, decision=Decision.APPROVE,
                               at=dt.datetime.now(dt.UTC)))
        session.get(ExportRequest, request).state = RequestState.REVIEWED
    with pytest.raises(StateConflict, match="small.csv failed the automatic checks and no checker overrode the Fail"):
        airlock.release("carol", request)
    assert airlock.get("carol", request).state == "reviewed"
    assert not (airlock.store.releases / str(request)).exists()


def test_a_checker_who_once_was_a_member_does_not_review_and_no_act_reads_the_audit_log(airlock, catalogue_url):
    """Who is tied to a project is the access module's answer from the membership history, never a
    scan of the audit log (which grows with every act)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from datasets import workflow

    with session_scope(catalogue_url) as session:
        workflow.add_member(session, "steward", "cardio-risk", "dave")
    with session_scope(catalogue_url) as session:
        workflow.remove_member(session, "steward", "cardio-risk", "dave")
    request = submitted_request(airlock)
    statements: list[str] = []

    def seen(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        with pytest.raises(NotFound):  # a tied checker does not even see it
            airlock.review("dave", request, {output_id(airlock, request): "approve"})
        assert [r.id for r in airlock.queue("carol")] == [request] and airlock.queue("dave") == []
    finally:
        event.remove(Engine, "before_cursor_execute", seen)
    reads = [s for s in statements if "audit_events" in s and s.lstrip().upper().startswith("SELECT")]
    assert statements and not reads
