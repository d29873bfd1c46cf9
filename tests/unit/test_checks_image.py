"""The singleuser image ships the very checks the service runs, taken from the package at each
build; and that package stays importable without the hub."""

from __future__ import annotations

import tarfile
from pathlib import Path

from images.build import build_context

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "egress_review" / "checks"


def test_the_singleuser_context_carries_the_services_checks_byte_for_byte():
    with tarfile.open(fileobj=build_context("singleuser", None)) as context:
        shipped = {m.name.rsplit("/", 1)[1]: context.extractfile(m).read() for m in context.getmembers()
                   if m.name.startswith("tre_check/egress_review/checks/") and m.name.endswith(".py")}
        assert "tre_check/egress_review/__init__.py" in context.getnames()
    source = {p.name: p.read_bytes() for p in SOURCE.glob("*.py")}
    assert shipped == source


def test_the_singleuser_context_carries_the_french_catalogue_where_the_checks_read_it():
    """``tre check`` speaks French in the workspace: the .po file travels with the package, at the
    place ``egress_review/checks/i18n.py`` looks first (``egress_review/locale``)."""
    from egress_review.checks import i18n

    with tarfile.open(fileobj=build_context("singleuser", None)) as context:
        shipped = context.extractfile("tre_check/egress_review/locale/fr/LC_MESSAGES/tre.po").read()
    assert shipped == (ROOT / "tre_core" / "locale" / "fr" / "LC_MESSAGES" / "tre.po").read_bytes()
    assert i18n.LOCALE_DIRS[0] == ROOT / "egress_review" / "locale"  # in the image: next to checks/


def test_the_checks_import_nothing_of_the_hub():
    """The package runs in a workspace: no datasets, spawner or service imports."""
    for path in SOURCE.glob("*.py"):
        text = path.read_text()
        for forbidden in ("from datasets", "import datasets", "from spawner", "egress_review.logic",
                          "egress_review.app", "import typer"):
            assert forbidden not in text, f"{path.name} imports {forbidden}"


def test_the_shipped_checks_import_on_their_own(tmp_path):
    """What the image gets is importable without the rest of ``egress_review``: each module of the
    shipped package imports in a fresh interpreter that sees only the shipped copy of the package
    (a textual list of forbidden imports missed ``egress_review.store`` once, and the image build
    failed)."""
    import os
    import subprocess
    import sys

    with tarfile.open(fileobj=build_context("singleuser", None)) as context:
        members = [m for m in context.getmembers() if m.name.startswith("tre_check/egress_review/")]
        context.extractall(tmp_path, members=members, filter="data")
    shipped = tmp_path / "tre_check"
    modules = sorted(f"egress_review.checks.{p.stem}" for p in (shipped / "egress_review" / "checks").glob("*.py")
                     if p.stem != "__init__")
    # The project's editable install would otherwise find the repository's egress_review modules.
    program = ("import importlib, sys\n"
               "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f)]\n"
               "for name in sys.argv[1:]:\n"
               "    module = importlib.import_module(name)\n"
               f"    assert module.__file__.startswith({str(shipped)!r}), module.__file__\n")
    result = subprocess.run([sys.executable, "-c", program, *modules], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(shipped)}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
