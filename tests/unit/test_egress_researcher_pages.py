"""The researcher's side of the egress pages, over HTTP on a real TRE database (issue 16): the
automatic checks shown as soon as a file is added, refusals beside their field with everything
typed kept, files added by a click in the project's tree and removed, Release offered only when
the approvals are there, confirmations before Release, Withdraw and Reject, the checker's landing
on the queue, plurals, human timestamps, shortened digests, decisions read as decisions, and the
checkers' comments kept in view through a resubmission."""

from __future__ import annotations

from bs4 import BeautifulSoup

from tests.unit.egress_fixtures import submitted_request
from tests.unit.test_egress_service import browser, service, table_of, xsrf_of  # noqa: F401 - a fixture

SMALL = "region,age_band,stays\nBretagne,40-59,132\nOccitanie,40-59,3\n"
FR = {"Accept-Language": "fr-FR,fr;q=0.9"}


def soup(response) -> BeautifulSoup:
    return BeautifulSoup(response.text, "html.parser")


def draft(airlock, title: str = "Stays") -> int:
    return airlock.create("alice", "cardio-risk", title)


def test_adding_a_table_with_a_count_of_3_shows_fail_and_the_cell_before_submitting(service, tmp_path):
    base, airlock = service
    (tmp_path / "workspaces/cardio-risk/shared/outputs/small.csv").write_text(SMALL)
    rid = draft(airlock)
    alice = browser(base, "alice")
    page = alice.get(base + f"requests/{rid}", params={"folder": "outputs"})
    # the project folder is a tree: /project open down to outputs/, each file a button that adds it
    tree = soup(page)
    assert tree.select_one("li.workspace-entry[data-path='outputs'] a")["aria-expanded"] == "true"
    assert tree.select_one("button.add-pick[value='outputs/small.csv']") is not None
    added = alice.post(base + f"requests/{rid}/files", data={
        "pick": "outputs/small.csv", "path": "outputs/", "group": "Tables", "kind": "output",
        "context": "Stays by region", "controls": "None yet", "_xsrf": xsrf_of(page)})
    assert added.status_code == 200 and added.url.endswith(f"requests/{rid}?done=files")
    shown = soup(added)
    file_id = int(shown.select_one("tr.request-file")["id"].removeprefix("file-"))
    assert airlock.get("alice", rid).state == "draft"  # nothing submitted
    assert shown.find(id=f"outcome-{file_id}")["data-outcome"] == "fail"
    assert shown.find(id=f"outcome-{file_id}").get_text() == "Fail"
    assert shown.find(id=f"summary-{file_id}").get_text() == "2 rows · 3 rules: 2 pass, 0 to review, 1 fail · 1 flagged cell"
    cell = shown.select_one(f"#excerpt-{file_id} td.check-flagged")
    assert (cell.get_text(), cell["data-row"], cell["data-col"], cell["data-rules"]) == ("3", "2", "2", "threshold")
    # the Bretagne row, with no flagged cell, is not repeated in the excerpt
    assert [tr["data-row"] for tr in shown.select(f"#excerpt-{file_id} tr")] == ["0", "2"]
    assert shown.select_one(".check[data-rule='threshold'] .cell-name").get_text() == "Occitanie / 40-59, stays: 3"
    french = soup(alice.get(base + f"requests/{rid}", headers=FR))
    assert french.find(id=f"outcome-{file_id}").get_text() == "Non conforme"
    assert "1 cellule signalée" in french.find(id=f"summary-{file_id}").get_text()
    # the checkers see the same cell, named the same way, once it is submitted
    airlock.submit("alice", rid)
    review = soup(browser(base, "carol").get(base + f"reviews/{rid}"))
    assert review.select_one(f"#table-{file_id} td.check-flagged").get_text() == "3"
    assert review.select_one(".check[data-rule='threshold'] .cell-name").get_text() == "Occitanie / 40-59, stays: 3"
    # the researcher still reads the verdict after submitting
    after = soup(alice.get(base + f"requests/{rid}"))
    assert after.find(id=f"outcome-{file_id}")["data-outcome"] == "fail"


def test_a_mistyped_path_keeps_the_form_and_says_why_beside_the_field(service):
    base, airlock = service
    rid = draft(airlock)
    alice = browser(base, "alice")
    page = alice.get(base + f"requests/{rid}")
    refused = alice.post(base + f"requests/{rid}/files", data={
        "path": "outputs/tabel.csv", "group": "Table 1", "kind": "supporting", "context": "Readmissions",
        "controls": "Counts under 10 suppressed", "_xsrf": xsrf_of(page)}, allow_redirects=False)
    assert refused.status_code == 400
    form = soup(refused)
    problem = form.find(id="problem-path")
    assert problem is not None and "outputs/tabel.csv" in problem.get_text()
    assert problem.find_previous("input")["id"] == "add-path"  # beside the field, not on a page of its own
    assert form.find(id="add-path")["value"] == "outputs/tabel.csv"
    assert form.find(id="add-group")["value"] == "Table 1"
    assert form.find(id="add-context").get_text() == "Readmissions"
    assert form.find(id="add-controls").get_text() == "Counts under 10 suppressed"
    assert form.find(id="kind-supporting").has_attr("checked")
    assert form.find(id="request-title") is not None and airlock.get("alice", rid).files == []
    french = alice.post(base + f"requests/{rid}/files", headers=FR, data={
        "path": "", "group": "G", "kind": "output", "_xsrf": xsrf_of(page)}, allow_redirects=False)
    assert french.status_code == 400 and "Choisissez un fichier" in soup(french).find(id="problem-path").get_text()
    empty = alice.post(base + f"requests/{rid}/submit", data={"_xsrf": xsrf_of(page)}, allow_redirects=False)
    assert empty.status_code == 400
    assert "Add at least one output file" in soup(empty).find(id="problem-submit").get_text()


def test_a_refusal_that_is_no_form_problem_links_back_to_the_request(service):
    base, airlock = service
    rid = submitted_request(airlock)
    fred = browser(base, "fred")  # a member of the project, not the author
    page = fred.get(base + "new")
    refused = fred.post(base + f"requests/{rid}/withdraw", data={"_xsrf": xsrf_of(page), "confirmed": "yes"},
                       allow_redirects=False)
    assert refused.status_code == 403
    assert soup(refused).find(id="back-to-request")["href"].endswith(f"requests/{rid}")


def test_files_are_removed_while_editable_and_their_group_with_the_last_one(service):
    base, airlock = service
    rid = draft(airlock)
    table = airlock.add_file("alice", rid, "outputs/table.csv", "Table 1", "output", context="c", controls="k")
    alice = browser(base, "alice")
    page = alice.get(base + f"requests/{rid}")
    assert soup(page).find(id=f"remove-file-{table}") is not None
    removed = alice.post(base + f"requests/{rid}/remove", data={"file": str(table), "_xsrf": xsrf_of(page)})
    assert removed.status_code == 200
    view = airlock.get("alice", rid)
    assert view.files == [] and view.groups == []
    submitted = submitted_request(airlock)
    assert soup(alice.get(base + f"requests/{submitted}")).select("button[id^=remove-file-]") == []


def reviewed_with(airlock, decisions: tuple[str, str]) -> tuple[int, int]:
    rid = submitted_request(airlock)
    table = table_of(airlock, rid)
    for checker, decision in zip(("carol", "dave"), decisions):
        airlock.review(checker, rid, {table: decision})
    return rid, table


def test_release_is_offered_only_with_the_approvals_and_asked_again(service):
    base, airlock = service
    carol = browser(base, "carol")
    short, _ = reviewed_with(airlock, ("approve", "changes_requested"))
    page = soup(carol.get(base + f"reviews/{short}"))
    assert page.find(id="release-request") is None
    assert "lack 2 approvals" in page.find(id="release-not-offered").get_text()
    assert page.find(id="return-request") is not None
    ready, _ = reviewed_with(airlock, ("approve", "approve"))
    page = carol.get(base + f"reviews/{ready}")
    assert soup(page).find(id="release-request") is not None
    asked = carol.post(base + f"requests/{ready}/release", data={"_xsrf": xsrf_of(page)})
    dialog = soup(asked).find("dialog", id="confirm-release")
    assert dialog is not None and dialog.has_attr("open") and airlock.get("carol", ready).state == "reviewed"
    assert dialog.find(id="confirm-release-cancel")["href"].endswith(f"reviews/{ready}")
    carol.post(base + f"requests/{ready}/release", data={"_xsrf": xsrf_of(asked), "confirmed": "yes"})
    assert airlock.get("alice", ready).state == "released"


def test_reject_and_withdraw_are_asked_again_and_keep_what_was_typed(service):
    base, airlock = service
    rid, _ = reviewed_with(airlock, ("approve", "approve"))
    carol = browser(base, "carol")
    page = carol.get(base + f"reviews/{rid}", headers=FR)
    asked = carol.post(base + f"requests/{rid}/reject", headers=FR,
                       data={"comment": "Row-level data.", "_xsrf": xsrf_of(page)})
    dialog = soup(asked).find("dialog", id="confirm-reject")
    assert "Refuser la demande" in dialog.get_text() and airlock.get("carol", rid).state == "reviewed"
    assert dialog.find("input", attrs={"name": "comment"})["value"] == "Row-level data."
    carol.post(base + f"requests/{rid}/reject", data={"comment": "Row-level data.", "confirmed": "yes",
                                                      "_xsrf": xsrf_of(asked)})
    assert airlock.get("carol", rid).state == "rejected"

    other = submitted_request(airlock)
    alice = browser(base, "alice")
    page = alice.get(base + f"requests/{other}")
    shown = soup(page)
    # Withdraw sits apart from Submit, in its own section at the end of the page
    assert shown.find(id="withdraw-request").find_parent("section")["id"] == "withdraw-section"
    asked = alice.post(base + f"requests/{other}/withdraw", data={"_xsrf": xsrf_of(page)})
    assert soup(asked).find("dialog", id="confirm-withdraw") is not None
    assert airlock.get("alice", other).state == "submitted"
    alice.post(base + f"requests/{other}/withdraw", data={"_xsrf": xsrf_of(asked), "confirmed": "yes"})
    assert airlock.get("alice", other).state == "withdrawn"


def test_each_role_lands_on_its_own_work(service):
    base, airlock = service
    carol = browser(base, "carol")
    landing = carol.get(base, allow_redirects=False)
    assert landing.status_code == 302 and landing.headers["Location"].endswith("/queue")
    queue = soup(carol.get(base + "queue"))
    assert queue.find(id="nav-home") is None and queue.find(id="nav-new") is None
    alice = soup(browser(base, "alice").get(base))
    assert alice.find(id="nav-queue") is None and alice.find(id="queue-count") is None
    bobs = airlock.create("bob", "diabetes-outcomes", "Bob's table")
    (airlock.workspace("diabetes-outcomes") / "outputs" / "t.csv").write_text("region,n\nA,40\nB,50\n")
    airlock.add_file("bob", bobs, "outputs/t.csv", "T", "output", context="c", controls="k")
    airlock.submit("bob", bobs)
    erin = soup(browser(base, "erin").get(base))  # a researcher of cardio-risk and a checker
    assert erin.find(id="queue-count").get_text() == "1 request waits for a review or a decision."
    erin_fr = soup(browser(base, "erin").get(base, headers=FR))
    assert erin_fr.find(id="queue-count").get_text() == "1 demande attend un examen ou une décision."


def test_timestamps_digests_and_decisions_read_as_people_read_them(service):
    base, airlock = service
    rid, table = reviewed_with(airlock, ("approve", "changes_requested"))
    airlock.return_("carol", rid, "Round the counts to 5, please.")
    alice = browser(base, "alice")
    page = soup(alice.get(base + f"requests/{rid}", headers=FR))
    stamp = page.select_one("time")
    assert stamp["datetime"].startswith("20") and "T" not in stamp.get_text()
    sha = page.select_one(f"#file-{table} code.sha256")
    assert len(sha.get_text()) == 13 and sha["data-full"] == page.find(id=f"file-{table}")["data-sha256"]
    assert sha["title"].endswith(sha["data-full"])
    decisions = {s["data-reviewer"]: s.get_text() for s in page.select(f"#file-{table} .review")}
    assert decisions == {"carol": "carol : Approuvé", "dave": "dave : Modifications demandées"} or \
        decisions == {"carol": "carol: Approuvé", "dave": "dave: Modifications demandées"}
    states = {soup(alice.get(base)).select_one(f"tr[data-id='{rid}'] .request-state")["class"][1],
              page.find(id="request-state")["class"][1]}
    assert states == {"text-bg-warning"}  # one colour for "returned", on the list and on the request


def test_the_checkers_comments_stay_in_view_while_a_resubmission_is_reviewed(service):
    base, airlock = service
    rid, _ = reviewed_with(airlock, ("approve", "changes_requested"))
    airlock.return_("carol", rid, "Round the counts to 5, please.")
    airlock.submit("alice", rid)
    assert airlock.get("alice", rid).state in ("submitted", "partially_reviewed")
    page = soup(browser(base, "alice").get(base + f"requests/{rid}"))
    assert "Round the counts to 5, please." in [c.get_text() for c in page.select(".comment-text")]
    # a checker's comment made during the new round stays blind until the request is decided
    airlock.comment("dave", rid, "Still looking.", visible_to_researcher=True)
    page = soup(browser(base, "alice").get(base + f"requests/{rid}"))
    assert "Still looking." not in page.get_text()


def test_a_new_request_refused_says_why_beside_its_field(service):
    base, _ = service
    alice = browser(base, "alice")
    page = alice.get(base + "new")
    blank = alice.post(base + "new", data={"project": "cardio-risk", "title": "  ", "_xsrf": xsrf_of(page)})
    assert blank.status_code == 400 and "Give the request a title" in soup(blank).find(id="problem-title").get_text()
    assert soup(blank).select_one("#project option[selected]")["value"] == "cardio-risk"
    other = alice.post(base + "new", data={"project": "diabetes-outcomes", "title": "Mine", "_xsrf": xsrf_of(page)})
    assert other.status_code == 403 and "diabetes-outcomes" in soup(other).find(id="problem-project").get_text()
    assert soup(other).find(id="title")["value"] == "Mine"


def test_an_interrupted_release_is_finished_from_the_review_page(service):
    """Approved, its copier gone (killed, or the store full): the checker's page offers to finish
    it, in the checker's language, and finishing it releases the files once."""
    base, airlock = service
    rid, _ = reviewed_with(airlock, ("approve", "approve"))

    def approve_only(request_id):  # the service dies between the approval and the copy out
        raise SystemExit

    airlock._finish_leased = approve_only
    try:
        airlock.release("carol", rid)
    except SystemExit:
        pass
    del airlock._finish_leased
    assert airlock.get("alice", rid).state == "approved"
    dave = browser(base, "dave")
    page = dave.get(base + f"reviews/{rid}", headers=FR)
    assert "Terminer la publication" in soup(page).find(id="finish-release").get_text()
    dave.post(base + f"requests/{rid}/release", data={"_xsrf": xsrf_of(page), "confirmed": "yes"})
    assert airlock.get("alice", rid).state == "released"
    assert soup(dave.get(base + f"reviews/{rid}")).find(id="finish-release") is None
