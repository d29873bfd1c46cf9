"""The singleuser image ships the very checks the service runs: its copy must not drift."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "egress_review" / "checks"
COPY = ROOT / "images" / "singleuser" / "tre_check" / "egress_review" / "checks"


def test_the_images_copy_of_the_checks_is_the_services():
    source = {p.name: p.read_bytes() for p in SOURCE.glob("*.py")}
    copy = {p.name: p.read_bytes() for p in COPY.glob("*.py")}
    assert sorted(copy) == sorted(source)
    stale = [name for name in source if copy[name] != source[name]]
    assert not stale, f"refresh with: cp egress_review/checks/*.py {COPY.relative_to(ROOT)}/ ({stale})"


def test_the_checks_import_nothing_of_the_hub():
    """The package runs in a workspace: no datasets, spawner or service imports."""
    for path in SOURCE.glob("*.py"):
        text = path.read_text()
        for forbidden in ("from datasets", "import datasets", "from spawner", "egress_review.requests",
                          "egress_review.app", "import typer"):
            assert forbidden not in text, f"{path.name} imports {forbidden}"
