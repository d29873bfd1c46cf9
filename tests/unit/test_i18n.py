"""The browser's language picks the catalogue; every message has its French translation."""

import pytest

from tre_core.i18n import _messages, negotiate
from datasets.messages import REFUSALS


@pytest.mark.parametrize(
    ("header", "language"),
    [("fr-FR,fr;q=0.9,en-US;q=0.8", "fr"), ("en-GB,en;q=0.9,fr;q=0.8", "en"), ("de-DE,fr;q=0.5", "fr"),
     ("de-DE", "en"), (None, "en"), ("fr;q=0, en", "en"), ("en;q=0.4, fr;q=0.6", "fr")],
)
def test_negotiation(header, language):
    assert negotiate(header) == language


def test_every_refusal_is_translated():
    french = _messages("fr")
    missing = [text for text in REFUSALS.values() if text not in french]
    assert not missing


def test_home_page_texts_are_translated():
    import re
    from pathlib import Path

    templates = Path(__file__).resolve().parents[2] / "hub" / "pages" / "templates"
    texts = {m for t in templates.glob("*.html") for m in re.findall(r'tre\.text\(lang, "([^"]+)"[,)]', t.read_text())}
    assert texts and not texts - set(_messages("fr"))


def test_what_waits_on_the_home_page_is_translated():
    from hub.pages.home_page import ERRANDS

    assert not {text for _, text in ERRANDS.values()} - set(_messages("fr"))


def test_start_queue_messages_are_translated():
    from spawner.project_spawner import SLOT_TIMED_OUT, STARTING, WAITING_IN_LINE

    french = _messages("fr")
    assert not {WAITING_IN_LINE, STARTING, SLOT_TIMED_OUT} - set(french)
    assert "numéro 4" in french[WAITING_IN_LINE].format(place=4)
