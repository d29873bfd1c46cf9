"""Messages people read, in English and French, from gettext catalogues in ``tre_core/locale``.

The language is the browser's (its Accept-Language header), falling back to English. Catalogues
are read from the ``.po`` sources with Babel, so there is no compiled file to keep in step.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "tre"
LANGUAGES = ("en", "fr")
DEFAULT_LANGUAGE = "en"


def negotiate(accept_language: str | None) -> str:
    """The first of our languages the browser asks for, by its q-values; English otherwise."""
    choices = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            choices.append((-quality, position, primary))
    return min(choices)[2] if choices else DEFAULT_LANGUAGE


@lru_cache(maxsize=None)
def _messages(language: str) -> dict[str, str]:
    path = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not path.exists():
        return {}
    with path.open("rb") as stream:
        catalog = read_po(stream, locale=language)
    return {m.id: m.string for m in catalog if m.id and m.string and not m.fuzzy}


def translate(language: str, message: str, **params: object) -> str:
    """``message`` in ``language`` (the English text is the msgid), with ``{name}`` filled in; a
    parameter that is itself a ``Message`` (a reason inside a refusal) is said in that language too."""
    params = {name: value.said_in(language) if isinstance(value, Message) else value
              for name, value in params.items()}
    return _messages(language).get(message, message).format(**params)


class Message:
    """A message for a person, kept as its English msgid and parameters until the language is known:
    ``str()`` is the English, ``said_in(language)`` the person's language (French from the catalogue)."""

    def __init__(self, msgid: str, **params: object) -> None:
        self.msgid, self.params = msgid, params

    def said_in(self, language: str) -> str:
        return translate(language, self.msgid, **self.params)

    def __str__(self) -> str:
        return self.msgid.format(**self.params)

    def __repr__(self) -> str:
        return f"Message({self.msgid!r}, **{self.params!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and (self.msgid, self.params) == (other.msgid, other.params)

    __hash__ = None  # parameters may be unhashable
