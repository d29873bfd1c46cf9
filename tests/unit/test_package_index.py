"""The package index's rules and acts: policies, requests, the host-side fetch (real pip against a
throwaway upstream index on the loopback) and all-or-nothing publishing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import select

from tre_core.db import session_scope
from datasets.models import AuditEvent
from datasets.workflow import PermissionDenied, WorkflowError
from package_index import workflow
from package_index.models import INSTALLATION, Distribution, Policy, RequestState
from package_index.policy import BadRequest, effective, requirement, roots_served
from package_index.store import Artifact, HashMismatch, IndexStore
from tests.package_upstream import free_port, throwaway_upstream, upstream_index


def test_a_project_follows_the_installation_unless_it_has_its_own_policy():
    assert effective(None, None) is Policy.PRE_APPROVED
    assert effective(Policy.NONE, None) is Policy.NONE
    assert effective(Policy.NONE, Policy.ON_REQUEST) is Policy.ON_REQUEST
    assert roots_served(Policy.NONE) == ()
    assert roots_served(Policy.PRE_APPROVED) == ("allowlist",)
    assert roots_served(Policy.ON_REQUEST) == ("allowlist", "approved")


def test_requirements_are_read_as_pip_reads_them_and_bad_ones_say_how_to_write_them():
    assert str(requirement("Scikit_Survival", "0.23.1")) == "scikit-survival==0.23.1"
    assert str(requirement("lifelines", ">=0.29,<0.31")) == "lifelines<0.31,>=0.29"
    assert str(requirement("tableone")) == "tableone"
    with pytest.raises(BadRequest, match="not a package name"):
        requirement("evil; rm -rf /")
    with pytest.raises(BadRequest, match="not a version"):
        requirement("lifelines", "latest")


def test_publishing_is_all_or_nothing_and_checks_every_hash(tmp_path):
    store = IndexStore(tmp_path / "index")
    good, bad = tmp_path / "a-1.0-py3-none-any.whl", tmp_path / "b-1.0-py3-none-any.whl"
    good.write_bytes(b"good")
    bad.write_bytes(b"tampered")
    with pytest.raises(HashMismatch, match="Nothing was published"):
        store.publish([Artifact(good, hashlib.sha256(b"good").hexdigest()),
                       Artifact(bad, hashlib.sha256(b"original").hexdigest())], "approved")
    assert store.served() == {"allowlist": [], "approved": []}
    assert not list((tmp_path / "index" / "approved" / ".incoming").iterdir())  # no leftovers
    store.publish([Artifact(good, hashlib.sha256(b"good").hexdigest())], "approved")
    assert store.served()["approved"] == [good.name]
    assert store.remove(good.name) and store.served()["approved"] == []


def _sessions(url):
    return lambda: session_scope(url)


def _ask(url, name="tre-throwaway", version="", user="alice", project="cardio-risk"):
    with session_scope(url) as session:
        return workflow.ask(session, user, project, name, version, "survival curves for the protocol").id


def test_requests_follow_the_project_policy_and_membership(catalogue_url):
    with session_scope(catalogue_url) as session:
        with pytest.raises(PermissionDenied):
            workflow.set_policy(session, "alice", INSTALLATION, Policy.ON_REQUEST)
    with pytest.raises(BadRequest, match="takes no requests"):
        _ask(catalogue_url)  # the default, pre-approved, takes none
    with session_scope(catalogue_url) as session:
        workflow.set_policy(session, "admin", "cardio-risk", Policy.ON_REQUEST)
    with pytest.raises(BadRequest, match="not a member"):
        _ask(catalogue_url, user="bob")
    first = _ask(catalogue_url)
    with pytest.raises(BadRequest, match=f"#{first} .* already waiting"):
        _ask(catalogue_url)
    with pytest.raises(BadRequest, match="at least 10 characters"):
        with session_scope(catalogue_url) as session:
            workflow.ask(session, "alice", "cardio-risk", "lifelines", "", "need")
    with session_scope(catalogue_url) as session:
        assert [r.id for r in workflow.requests_of(session, "cardio-risk")] == [first]
        assert workflow.requests_of(session, "diabetes-outcomes") == []
        actions = [e.action for e in session.scalars(select(AuditEvent))]
    assert actions.count("package.policy.set") == 1 and actions.count("package.requested") == 1


def test_approval_fetches_checks_and_publishes_the_closure(catalogue_url, tmp_path):
    throwaway_upstream(tmp_path / "upstream")
    store = IndexStore(tmp_path / "index")
    with session_scope(catalogue_url) as session:
        workflow.set_policy(session, "admin", "cardio-risk", Policy.ON_REQUEST)
    request_id = _ask(catalogue_url, version="1.1")
    with upstream_index(tmp_path / "upstream") as url:
        closure = workflow.review(_sessions(catalogue_url), "admin", request_id, url, None)
        assert all(i["size"] > 500 for i in closure)
        assert {(i["name"], i["version"], i["licence"]) for i in closure} == {
            ("tre-throwaway", "1.1", "MIT"), ("tre-throwaway-dep", "2.0", "BSD-3-Clause")}
        request = workflow.approve(_sessions(catalogue_url), store, "admin", request_id, url, None)
    assert request.state is RequestState.PUBLISHED and "pip install" in request.outcome
    assert store.served()["approved"] == ["tre_throwaway-1.1-py3-none-any.whl",
                                          "tre_throwaway_dep-2.0-py3-none-any.whl"]
    with session_scope(catalogue_url) as session:
        assert {d.name for d in workflow.served(session)} == {"tre-throwaway", "tre-throwaway-dep"}
        assert workflow.remove(session, store, "admin", "tre-throwaway", "superseded") == [
            "tre_throwaway-1.1-py3-none-any.whl"]
    assert store.served()["approved"] == ["tre_throwaway_dep-2.0-py3-none-any.whl"]
    with session_scope(catalogue_url) as session:
        assert session.get(workflow.PackageRequest, request_id).state is RequestState.REMOVED
        actions = [e.action for e in session.scalars(select(AuditEvent))]
    assert {"package.approved", "package.published", "package.removed"} <= set(actions)


@pytest.mark.parametrize("name, version, lie, message", [
    ("tre-no-such-thing", "", False, "No package named tre-no-such-thing"),
    ("tre-throwaway", "9.9", False, "has no version ==9.9 .*newest: 1.0, 1.1"),
    ("tre-throwaway", "1.0", True, "does not have the sha256 the index published"),
])
def test_a_failed_approval_says_why_and_publishes_nothing(catalogue_url, tmp_path, name, version, lie, message):
    throwaway_upstream(tmp_path / "upstream", lie_about="tre_throwaway-1.0-py3-none-any.whl" if lie else None)
    store = IndexStore(tmp_path / "index")
    with session_scope(catalogue_url) as session:
        workflow.set_policy(session, "admin", "cardio-risk", Policy.ON_REQUEST)
    request_id = _ask(catalogue_url, name=name, version=version)
    with upstream_index(tmp_path / "upstream") as url, pytest.raises(WorkflowError, match=message):
        workflow.approve(_sessions(catalogue_url), store, "admin", request_id, url, None)
    assert store.served() == {"allowlist": [], "approved": []}
    with session_scope(catalogue_url) as session:
        request = session.get(workflow.PackageRequest, request_id)
        assert request.state is RequestState.FAILED and "nothing was published" in request.outcome
        assert session.scalars(select(Distribution)).all() == []


def test_an_upstream_index_that_is_down_is_named(catalogue_url, tmp_path):
    with session_scope(catalogue_url) as session:
        workflow.set_policy(session, "admin", "cardio-risk", Policy.ON_REQUEST)
    request_id = _ask(catalogue_url)
    down = f"http://127.0.0.1:{free_port()}/simple/"
    with pytest.raises(WorkflowError, match="cannot be reached"):
        workflow.approve(_sessions(catalogue_url), IndexStore(tmp_path / "index"), "admin", request_id, down, None)


def _page_texts() -> set[str]:
    import ast
    import re

    from package_index import pages

    texts = set(pages.STATE_TEXT.values()) | {"Packages"}
    for template in pages.TEMPLATES.glob("*.html"):
        texts |= set(re.findall(r'_\("([^"]+)"', template.read_text()))
        texts |= set(re.findall(r"_\('([^']+)'", template.read_text()))
    for node in ast.walk(ast.parse(Path(pages.__file__).read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args:
            first = {"Problem": node.args[0], "translate": node.args[1] if len(node.args) > 1 else None}.get(node.func.id)
            if isinstance(first, ast.Constant):
                texts.add(first.value)
    return texts


def test_every_text_of_the_packages_page_is_translated_into_french():
    from tre_core.i18n import _messages

    texts = _page_texts()
    assert len(texts) > 30
    assert sorted(texts - set(_messages("fr"))) == []


@pytest.mark.parametrize("language", ["en", "fr"])
def test_the_packages_page_shows_requests_closures_and_what_is_served(catalogue_url, tmp_path, language):
    from bs4 import BeautifulSoup

    from hub.catalogue_service import queries
    from hub.catalogue_service.app import Site, plugin_pages
    from package_index.pages import STATE_TEXT, _overview, served_section

    throwaway_upstream(tmp_path / "upstream")
    with session_scope(catalogue_url) as session:
        workflow.set_policy(session, "admin", "cardio-risk", Policy.ON_REQUEST)
    first, second = _ask(catalogue_url, version="1.1"), _ask(catalogue_url, name="tre-throwaway-dep")
    with upstream_index(tmp_path / "upstream") as url:
        workflow.review(_sessions(catalogue_url), "admin", first, url, None)
        workflow.publish_allowlist(_sessions(catalogue_url), IndexStore(tmp_path / "index"), "admin",
                                   ["tre-throwaway==1.0"], url, None)
    site = Site(catalogue_url, prefix="/services/catalogue/", hub_prefix="/hub/")
    assert "packages" in plugin_pages(site)
    with session_scope(catalogue_url) as session:
        overview = _overview(session, "alice", True)
        admin = queries.viewer(session, "admin")
        images_section = served_section(session)
    html = site.render("packages.html", language, page="packages", user={"name": "admin"}, viewer=admin,
                       xsrf_form_html=lambda: "", failure=None, typed={}, STATE_TEXT=STATE_TEXT, platform="CPython",
                       notice="asked", **overview)
    page = BeautifulSoup(html, "html.parser")
    assert page.html["lang"] == language and page.find("a", id="nav-packages")["href"] == "/services/catalogue/packages"
    assert [int(r["data-id"]) for r in page.select("#my-requests .request")] == [second, first]
    closure = page.find(id=f"request-{first}").select(".closure td")
    assert "tre-throwaway-dep" in [c.get_text(strip=True) for c in closure] and "BSD-3-Clause" in page.text
    assert page.select_one("#packages-served .served")["data-file"] == "tre_throwaway-1.0-py3-none-any.whl"
    if language == "fr":
        assert page.h1.get_text() == "Paquets" and "en attente d’un administrateur" in page.text
    with session_scope(catalogue_url) as session:
        registry = queries.image_registry(session)
    images = site.render("images.html", language, page="images", user={"name": "admin"}, viewer=admin,
                         xsrf_form_html=lambda: "", registry=registry, sections=[images_section])
    assert "tre_throwaway-1.0-py3-none-any.whl" in images
