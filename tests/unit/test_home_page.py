"""The hub's home page: Start only for a project that may start today, else when it opens and
why; what waits for each person, with counts; where each role lands after signing in."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import update

from datasets import access
from datasets.access import Refusal
from datasets.models import Grant
from hub.pages.home_page import HomePageSource
from tests.unit.egress_fixtures import make_airlock, submitted_request
from tre_core.db import session_scope

TODAY = dt.date.today()


def test_a_project_whose_grants_open_next_year_offers_no_start_and_says_when(catalogue_url):
    opens = dt.date(TODAY.year + 1, 1, 1)
    with session_scope(catalogue_url) as session:
        session.execute(update(Grant).where(Grant.project_slug == "cardio-risk").values(starts_on=opens))
    source = HomePageSource(catalogue_url)
    project, = source.read("alice").projects
    assert project.refusal is not None and project.refusal.reason is Refusal.GRANTS_NOT_STARTED
    assert project.opens_on == opens
    assert opens.isoformat() in source.refusal("fr", project.refusal)
    assert "accordés à partir du" in source.refusal("fr", project.refusal)
    assert "granted from" in source.refusal("en", project.refusal)
    # the start itself is refused for the same reason (never a bare 403)
    with session_scope(catalogue_url) as session:
        try:
            access.workspace_access(session, "alice", "cardio-risk", TODAY)
        except access.AccessRefused as refused:
            assert refused.reason is Refusal.GRANTS_NOT_STARTED
        else:
            raise AssertionError("a project whose grants open next year started")
    # control: bob's project is in force, so his home page offers Start
    bobs, = source.read("bob").projects
    assert bobs.refusal is None and bobs.opens_on is None


def test_each_role_sees_what_waits_and_lands_on_its_page(catalogue_url, tmp_path):
    airlock = make_airlock(catalogue_url, tmp_path)
    submitted_request(airlock)
    source = HomePageSource(catalogue_url, review_queue=airlock.queue, requests_of=airlock.list_requests)

    carol = source.read("carol")  # an output checker with no project of her own
    assert {e.kind: e.count for e in carol.errands} == {"review": 1}
    assert source.landing(carol) == "services/egress/queue"
    assert source.errand("fr", carol.errands[0]) == "Demandes d’export à relire – en attente : 1"
    assert source.errand("en", carol.errands[0]) == "Export requests to review – waiting: 1"

    alice = source.read("alice")  # a researcher: her projects on the home page, her request under way
    assert {e.kind: e.count for e in alice.errands} == {"returned": 0, "requests": 1}
    assert source.landing(alice) is None

    steward = source.read("steward")
    assert [e.kind for e in steward.errands] == ["applications"]
    assert source.landing(steward) == "services/catalogue/steward"

    admin = source.read("admin")
    assert [e.kind for e in admin.errands] == ["images"]
    assert source.landing(admin) == "services/catalogue/images"


def test_the_home_page_still_shows_when_the_egress_review_fails(catalogue_url):
    def broken(username):
        raise ConnectionError("the egress database is gone")

    source = HomePageSource(catalogue_url, review_queue=broken, requests_of=broken)
    carol = source.read("carol")
    assert carol.errands == [] and source.landing(carol) is None
    assert [p.slug for p in source.read("alice").projects] == ["cardio-risk"]
