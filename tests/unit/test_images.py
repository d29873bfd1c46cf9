"""The image registry: register, duplicate digest, retire, pin, the image a workspace gets; one
audit row per act and nothing half-done on a refusal, on SQLite and PostgreSQL. The SBOM is parsed
from real ``pip list`` and ``dpkg-query`` output captured from the singleuser image."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from datasets import audit
from datasets import images as registry
from datasets.access import AccessRefused, Refusal
from tre_core.db import session_scope
from datasets.models import AnalysisImage, AuditEvent, ImageStatus, Project
from datasets.workflow import PermissionDenied
from images.sbom import count_by_ecosystem, debian_components, make_sbom, python_components, split_inventory

DATA = Path(__file__).resolve().parent / "data"
PIP_LIST = (DATA / "pip_list.json").read_text()
DPKG_QUERY = (DATA / "dpkg_query.txt").read_text()
SBOM = make_sbom("singleuser", "sha256:" + "1" * 64, PIP_LIST, DPKG_QUERY)


def digest(n: int) -> str:
    return "sha256:" + f"{n:x}" * 64 if n < 16 else "sha256:" + f"{n:064x}"


def register(url, name="singleuser", number=1, actor="admin", **kwargs):
    with session_scope(url) as session:
        done = registry.register(session, actor, name=name, digest=digest(number), dockerfile="FROM x\n",
                                 build_args={"BASE": "b"}, sbom=SBOM, **kwargs)
        return done.image.reference, done.created


# The demo catalogue's load writes one row per member and grant, through the workflow acts.
LOADED = ("member.added", "grant.added")


def audit_actions(url) -> list[str]:
    with session_scope(url) as session:
        return [e.action for e in session.scalars(select(AuditEvent).where(AuditEvent.action.not_in(LOADED))
                                                  .order_by(AuditEvent.seq))]


def image_count(url) -> int:
    with session_scope(url) as session:
        return session.scalar(select(func.count()).select_from(AnalysisImage))


def pin(url, project, reference, engine_has=lambda d: True, actor="admin"):
    with session_scope(url) as session:
        return registry.pin(session, actor, project, reference, engine_has).reference


def image_for(url, project):
    with session_scope(url) as session:
        return registry.workspace_image(session, project)


# --- SBOM --------------------------------------------------------------------------------------


def test_sbom_lists_python_and_debian_packages_with_purls():
    python = {c["name"]: c for c in python_components(PIP_LIST)}
    assert python["acro"]["purl"] == f"pkg:pypi/acro@{python['acro']['version']}"
    assert python["pandas"]["version"].startswith("2.")  # ACRO keeps pandas below 3
    assert {"polars", "statsmodels", "seaborn", "scikit-learn", "jupyterlab"} <= set(python)
    # PyPI names normalised as the purl specification says
    assert python["jupyter_core" if "jupyter_core" in python else "jupyter-core"]["purl"].startswith("pkg:pypi/jupyter-core@")
    debian = {c["name"]: c for c in debian_components(DPKG_QUERY)}
    # dpkg's arch qualifier goes to the purl, the epoch's colon is escaped
    assert debian["libc6"]["purl"].startswith("pkg:deb/debian/libc6@") and debian["libc6"]["purl"].endswith("?arch=amd64")
    assert debian["bsdutils"]["version"].startswith("1:") and "@1%3A" in debian["bsdutils"]["purl"]
    assert {"python3", "tini", "ca-certificates"} <= set(debian)
    assert SBOM["bomFormat"] == "CycloneDX" and SBOM["specVersion"] == "1.5"
    assert count_by_ecosystem(SBOM) == {"python": len(python), "debian": len(debian)}
    assert all(c["type"] == "library" and c["version"] for c in SBOM["components"])


def test_inventory_output_without_the_separator_is_an_error():
    from images.sbom import InventoryError

    pip_part, dpkg_part = split_inventory(PIP_LIST + "\n----tre-sbom-dpkg----\n" + DPKG_QUERY)
    assert json.loads(pip_part) == json.loads(PIP_LIST) and dpkg_part.strip() == DPKG_QUERY.strip()
    with pytest.raises(InventoryError, match="did not print its package lists"):
        split_inventory("sh: 1: dpkg-query: not found")
    # a package dpkg knows but that is not installed has no version: not in the inventory
    assert debian_components("foo\t\nbar:amd64\t1.0\n") == [
        {"type": "library", "name": "bar", "version": "1.0", "purl": "pkg:deb/debian/bar@1.0?arch=amd64"}]


# --- registry ------------------------------------------------------------------------------------


def test_register_counts_versions_and_a_known_digest_is_a_no_op(catalogue_url):
    assert register(catalogue_url, number=1) == ("singleuser:1", True)
    assert register(catalogue_url, number=2) == ("singleuser:2", True)
    assert register(catalogue_url, name="r", number=3) == ("r:1", True)
    assert register(catalogue_url, number=2) == ("singleuser:2", False)  # the same build again
    assert image_count(catalogue_url) == 3
    assert audit_actions(catalogue_url) == ["image.built"] * 3
    with session_scope(catalogue_url) as session:
        image = registry.find(session, "singleuser")  # no version: the newest
        assert (image.version, image.digest, image.built_by, image.build_args) == (2, digest(2), "admin", {"BASE": "b"})
        assert image.sbom["components"] == SBOM["components"] and image.status == ImageStatus.ACTIVE
        assert audit.verify(session).ok


def test_only_admins_register_retire_and_pin_and_a_refusal_changes_nothing(catalogue_url):
    with pytest.raises(PermissionDenied, match="steward is not an admin"):
        register(catalogue_url, actor="steward")
    with pytest.raises(registry.ImageError, match="not an image id"):
        _register_bad_digest(catalogue_url)
    assert image_count(catalogue_url) == 0 and audit_actions(catalogue_url) == []
    register(catalogue_url, number=1)
    with pytest.raises(PermissionDenied):
        pin(catalogue_url, "cardio-risk", "singleuser:1", actor="alice")
    with pytest.raises(PermissionDenied):
        with session_scope(catalogue_url) as session:
            registry.retire(session, "steward", "singleuser:1")
    # the host's login (tre run on the host, no --as) is recorded as the builder
    assert register(catalogue_url, number=5, actor="root", by_host_user=True) == ("singleuser:2", True)
    assert audit_actions(catalogue_url) == ["image.built", "image.built"]


def _register_bad_digest(url):
    with session_scope(url) as session:
        registry.register(session, "admin", name="singleuser", digest="latest", dockerfile="", build_args={}, sbom={})


def test_pin_by_digest_and_the_image_a_workspace_gets(catalogue_url):
    with pytest.raises(AccessRefused) as refused:  # nothing registered: the admin must build
        image_for(catalogue_url, "cardio-risk")
    assert refused.value.reason == Refusal.NO_IMAGE and refused.value.params["image"] == "singleuser"
    register(catalogue_url, number=1)
    register(catalogue_url, number=2)
    register(catalogue_url, name="projects/example", number=7)
    default = image_for(catalogue_url, "cardio-risk")
    assert (default.name, default.version, default.digest, default.pinned) == ("singleuser", 2, digest(2), False)
    assert pin(catalogue_url, "cardio-risk", "projects/example:1") == "projects/example:1"
    pinned = image_for(catalogue_url, "cardio-risk")
    assert (pinned.digest, pinned.pinned) == (digest(7), True)
    assert image_for(catalogue_url, "diabetes-outcomes").digest == digest(2)  # other projects unchanged
    with session_scope(catalogue_url) as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "image.pinned")).one()
        assert (event.project, event.actor, event.details["digest"]) == ("cardio-risk", "admin", digest(7))


def test_pin_refusals_unknown_retired_missing_from_the_engine(catalogue_url):
    register(catalogue_url, number=1)
    before = audit_actions(catalogue_url)
    with pytest.raises(registry.ImageError, match="There is no registered image rstudio"):
        pin(catalogue_url, "cardio-risk", "rstudio")
    with pytest.raises(registry.ImageError, match="There is no registered image singleuser:9"):
        pin(catalogue_url, "cardio-risk", "singleuser:9")
    with pytest.raises(registry.ImageError, match="There is no project nope"):
        pin(catalogue_url, "nope", "singleuser:1")
    with pytest.raises(registry.ImageError, match="no longer has image singleuser:1"):
        pin(catalogue_url, "cardio-risk", "singleuser:1", engine_has=lambda d: False)
    with pytest.raises(registry.ImageError, match="not an image reference"):
        pin(catalogue_url, "cardio-risk", "Single User!")
    assert audit_actions(catalogue_url) == before
    with session_scope(catalogue_url) as session:
        assert session.get(Project, "cardio-risk").image_id is None


def test_retirement_blocks_pins_and_new_starts_and_is_audited_once(catalogue_url):
    register(catalogue_url, number=1)
    register(catalogue_url, name="projects/example", number=2)
    pin(catalogue_url, "cardio-risk", "projects/example:1")
    with session_scope(catalogue_url) as session:
        retired = registry.retire(session, "admin", "projects/example:1")
        assert (retired.status, retired.retired_by) == (ImageStatus.RETIRED, "admin")
    with pytest.raises(registry.ImageError, match="already retired"):
        with session_scope(catalogue_url) as session:
            registry.retire(session, "admin", "projects/example:1")
    with pytest.raises(registry.ImageError, match="is retired; pin an active image"):
        pin(catalogue_url, "diabetes-outcomes", "projects/example:1")
    with pytest.raises(AccessRefused) as refused:
        image_for(catalogue_url, "cardio-risk")
    assert refused.value.reason == Refusal.IMAGE_RETIRED and refused.value.params["image"] == "projects/example:1"
    with session_scope(catalogue_url) as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "image.retired")).one()
        assert event.details["pinned_projects"] == ["cardio-risk"]
    # retiring the default image: projects without a pin cannot start until another is registered
    with session_scope(catalogue_url) as session:
        registry.retire(session, "admin", "singleuser:1")
    with pytest.raises(AccessRefused) as refused:
        image_for(catalogue_url, "diabetes-outcomes")
    assert refused.value.reason == Refusal.NO_IMAGE
    assert audit_actions(catalogue_url) == ["image.built", "image.built", "image.pinned", "image.retired", "image.retired"]


def test_a_failed_build_is_audited_and_registers_nothing(catalogue_url):
    with session_scope(catalogue_url) as session:
        registry.record_build_failure(session, "admin", name="projects/broken", step="Step 4/6 : RUN pip install",
                                      log_path="/var/lib/tre/logs/x.log")
    assert image_count(catalogue_url) == 0
    with session_scope(catalogue_url) as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action.not_in(LOADED))).one()
        assert (event.action, event.details["step"]) == ("image.build_failed", "Step 4/6 : RUN pip install")


def test_a_registration_that_fails_midway_leaves_nothing(catalogue_url):
    """The image row and its audit row commit together: an error after the insert undoes both."""
    with pytest.raises(RuntimeError):
        with session_scope(catalogue_url) as session:
            registry.register(session, "admin", name="singleuser", digest=digest(1), dockerfile="", build_args={},
                              sbom=SBOM)
            raise RuntimeError("the engine went away before the commit")
    assert image_count(catalogue_url) == 0 and audit_actions(catalogue_url) == []


def test_the_plan_runs_the_pinned_digest_and_labels_it(catalogue_url):
    import datetime as dt

    from datasets.access import workspace_access
    from spawner.plan import make_workspace_plan
    from tests.unit.extract_helpers import with_ready_extracts

    register(catalogue_url, number=1)
    register(catalogue_url, name="projects/example", number=2)
    pin(catalogue_url, "cardio-risk", "projects/example:1")
    with session_scope(catalogue_url) as session:
        access = with_ready_extracts(workspace_access(session, "alice", "cardio-risk", dt.date(2026, 11, 23)))
        image = registry.workspace_image(session, "cardio-risk")
    plan = make_workspace_plan(access, instance="demo", image=image.digest, extracts_root=Path("/srv/extracts"),
                               workspaces_root=Path("/srv/ws"), default_mem_limit="2G", default_cpu_limit=1.0)
    assert plan.image == digest(2)
    # `tre images show` finds the servers of an image by this label
    assert plan.labels["tre.image-digest"] == digest(2)


@pytest.mark.parametrize("language", ["en", "fr"])
def test_the_admin_page_lists_images_packages_pins_and_failed_builds(catalogue_url, language):
    from bs4 import BeautifulSoup

    from hub.catalogue_service import queries
    from hub.catalogue_service.app import Site

    register(catalogue_url, number=1)
    register(catalogue_url, name="projects/example", number=2)
    pin(catalogue_url, "cardio-risk", "projects/example:1")
    with session_scope(catalogue_url) as session:
        registry.retire(session, "admin", "projects/example:1")
        registry.record_build_failure(session, "admin", name="projects/typo", step="Step 6/10 : RUN pip install",
                                      log_path="/x.log")
        found = queries.image_registry(session)
        admin = queries.viewer(session, "admin")
        steward = queries.viewer(session, "steward")
    assert admin.is_admin and not steward.is_admin
    assert found.default_image == "singleuser:1" and found.unpinned_projects == ("diabetes-outcomes",)
    site = Site("sqlite://", prefix="/services/catalogue/", hub_prefix="/hub/")
    html = site.render("images.html", language, page="images", user={"name": "admin"}, viewer=admin,
                       xsrf_form_html=lambda: "", registry=found)
    page = BeautifulSoup(html, "html.parser")
    example = page.find("tr", id="image-projects-example-1")
    assert example.select_one(".projects").get_text(strip=True) == "cardio-risk"
    assert example.select_one(".status").get_text(" ", strip=True).startswith(
        {"en": "Retired", "fr": "Retirée"}[language])
    assert digest(2) in example.get_text()
    packages = [li.get_text(" ", strip=True) for li in example.select(".packages li")]
    assert len(packages) == len(SBOM["components"]) and any(p.startswith("acro ") for p in packages)
    assert "Step 6/10 : RUN pip install" in page.find(id="failed-builds").get_text()
    assert page.find("a", id="nav-images")["href"] == "/services/catalogue/images"
    assert not page.find("script")
    assert page.html["lang"] == language
    if language == "fr":
        assert page.h1.get_text() == "Images d’analyse"
