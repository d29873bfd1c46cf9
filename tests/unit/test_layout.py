"""The house's rules, read from the source: imports run one way, and no product module grows past
500 lines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("tre_core", "datasets", "hub", "spawner", "egress_review", "images", "demo", "package_index", "extracts")
# What each package may import besides itself (egress_review: the hub's web kit and service runner
# only, which every TRE web service shares).
ALLOWED = {
    "tre_core": set(),
    "datasets": {"tre_core"},
    "spawner": {"tre_core", "datasets", "extracts"},
    "hub": {"tre_core", "datasets", "extracts"},
    "images": {"tre_core", "datasets"},
    "demo": {"tre_core", "datasets"},
    "egress_review": {"tre_core", "datasets", "hub.webkit", "hub.service_runner"},
    "package_index": {"tre_core", "datasets"},
    "extracts": {"tre_core", "datasets"},
}
IMPORT = re.compile(r"^\s*(?:from|import)\s+([\w.]+)", re.M)


def imports_of(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        for module in IMPORT.findall(path.read_text(encoding="utf-8")):
            top = module.split(".")[0]
            if top in PACKAGES and top != package:
                found.setdefault(module, set()).add(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_run_one_way(package):
    allowed = ALLOWED[package]
    wrong = {module: sorted(where) for module, where in imports_of(package).items()
             if module.split(".")[0] not in allowed and not any(module == a or module.startswith(a + ".")
                                                                for a in allowed)}
    assert wrong == {}


@pytest.mark.parametrize("package", PACKAGES)
def test_no_product_module_over_500_lines(package):
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / package).rglob("*.py")
            if (n := p.read_text(encoding="utf-8").count("\n")) > 500}
    assert long == {}
