"""The services' pages carry no inline style: their CSP (style-src 'self') would block it, as it
blocked the notebook frame's inline height on the review page (issue 18)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted([*(ROOT / "egress_review" / "templates").glob("*.html"),
                    *(ROOT / "datasets" / "service" / "templates").glob("*.html")])


def test_the_templates_are_found():
    assert any(t.name == "review.html" for t in TEMPLATES)


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: f"{t.parent.parent.name}/{t.name}")
def test_no_inline_style_where_the_csp_forbids_it(template):
    text = template.read_text()
    assert not re.search(r"\sstyle\s*=", text), template.name
    assert "<style" not in text, template.name


def test_the_notebook_frame_takes_its_height_from_the_style_sheet():
    review = (ROOT / "egress_review" / "templates" / "review.html").read_text()
    assert re.search(r'<div class="ratio ratio-4x3"><iframe class="file-notebook"', review)
