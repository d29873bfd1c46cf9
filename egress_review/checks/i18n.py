"""The checks' words in English and French, from the project's gettext catalogue, stored language-neutrally.

A rule says what it found as a ``Msg``: the English sentence (the msgid, as everywhere in the
project) and its parameters. A result keeps both, so the egress pages say it in the viewer's
language and ``tre check`` in the terminal's, long after the check ran; the English text is kept
too, for results stored before (they are shown as they are) and for logs.

The French comes from the platform's gettext catalogue (``tre_core/locale/fr/LC_MESSAGES/tre.po``),
through the platform's own reader wherever the platform is there: the egress service and the hub's
``tre check`` plug it in (``use_catalogue``). The package also runs alone, in the workspace image
(``images/build.py`` copies the same ``.po`` next to it as ``egress_review/locale``), where only
that one file is read, with a small reader of the subset Babel writes (no plural forms, no
contexts), checked against Babel by the tests.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

LANGUAGES = ("en", "fr")
DEFAULT_LANGUAGE = "en"
_HERE = Path(__file__).resolve().parent
# In the image: egress_review/locale, copied there at build; in the repository: tre_core/locale.
LOCALE_DIRS = (_HERE.parent / "locale", _HERE.parents[1] / "tre_core" / "locale")


class Msg(str):
    """A sentence a checker or researcher reads: the English text, that still knows its msgid and
    parameters (which may themselves be ``Msg`` or lists of them)."""

    template: str
    params: dict[str, Any]

    def __new__(cls, template: str, **params: Any) -> Msg:
        message = super().__new__(cls, _fill(template, params, DEFAULT_LANGUAGE))
        message.template, message.params = template, params
        return message

    def stored(self) -> dict[str, Any]:
        """The language-neutral form kept with a result: ``{"msgid", "params"}``, nested."""
        return {"msgid": self.template, "params": {k: _stored(v) for k, v in self.params.items()}}

    def said_in(self, language: str) -> str:
        return translate(language, self.template, **self.params)


def _stored(value: Any) -> Any:
    if isinstance(value, Msg):
        return value.stored()
    if isinstance(value, (list, tuple)):
        return [_stored(v) for v in value]
    return value


def _said(value: Any, language: str) -> Any:
    """A parameter in ``language``: a message (live or stored) translated, a list of them joined."""
    if isinstance(value, Msg):
        return value.said_in(language)
    if isinstance(value, Mapping) and "msgid" in value:
        return translate(language, str(value["msgid"]), **dict(value.get("params") or {}))
    if isinstance(value, (list, tuple)):
        return JOINER.said_in(language).join(str(_said(v, language)) for v in value)
    return value


def _fill(template: str, params: Mapping[str, Any], language: str) -> str:
    try:
        return template.format(**{k: _said(v, language) for k, v in params.items()})
    except (KeyError, IndexError, ValueError):
        return template  # a stored message whose parameters no longer fit: its words at least


# Between the messages of a list given as one parameter ("column a looks like...; column b..."):
# French puts a space before the semicolon.
JOINER = Msg("; ")


def translate(language: str, template: str, **params: Any) -> str:
    """``template`` in ``language`` (English when there is no translation), parameters filled in."""
    return _fill(catalogue(language).get(template, template), params, language)


def said(found: Mapping[str, Any], language: str) -> str:
    """A stored result's summary in ``language``; a result stored as English text only is shown as it is."""
    message = found.get("message")
    if isinstance(message, Mapping) and "msgid" in message:
        return str(_said(message, language))
    return str(found.get("summary", ""))


def said_param(found: Mapping[str, Any], name: str, language: str) -> str:
    """One parameter of a stored result's message in ``language`` (e.g. the earlier release it names),
    else the same-named detail as it was stored."""
    message = found.get("message")
    params = (message.get("params") or {}) if isinstance(message, Mapping) else {}
    if name in params:
        return str(_said(params[name], language))
    return str((found.get("details") or {}).get(name, ""))


# Where the translations come from: the platform's gettext catalogue when the checks run inside the
# platform (the egress service and the hub's ``tre check`` plug it in with ``use_catalogue``, so
# every page and refusal is said through one mechanism); the package's own reading of the same
# ``.po`` file only in the workspace image, where the checks run alone.
_platform_catalogue: Callable[[str], Mapping[str, str]] | None = None


def use_catalogue(messages: Callable[[str], Mapping[str, str]]) -> None:
    """Say every message through the platform's catalogue (``language -> {msgid: translation}``)."""
    global _platform_catalogue
    _platform_catalogue = messages


def catalogue(language: str) -> Mapping[str, str]:
    """The translated, non-fuzzy messages of ``language`` (empty for English)."""
    if language == DEFAULT_LANGUAGE:
        return {}
    if _platform_catalogue is not None:
        return _platform_catalogue(language)
    return _own_catalogue(language)


@lru_cache(maxsize=None)
def _own_catalogue(language: str) -> dict[str, str]:
    for folder in LOCALE_DIRS:
        path = folder / language / "LC_MESSAGES" / "tre.po"
        if path.is_file():
            return read_po(path.read_text(encoding="utf-8"))
    return {}


def read_po(text: str) -> dict[str, str]:
    """msgid -> msgstr of a ``.po`` file: entries separated by blank lines, strings continued on
    the next lines, fuzzy entries and empty translations left out."""
    messages: dict[str, str] = {}
    for entry in text.split("\n\n"):
        fuzzy, field, parts = False, None, {"msgid": [], "msgstr": []}
        for line in entry.splitlines():
            line = line.strip()
            if line.startswith("#,") and "fuzzy" in line:
                fuzzy = True
            elif line.startswith(("msgid ", "msgstr ")):
                field, _, rest = line.partition(" ")
                parts[field].append(ast.literal_eval(rest))
            elif line.startswith('"') and field:
                parts[field].append(ast.literal_eval(line))
        msgid, msgstr = "".join(parts["msgid"]), "".join(parts["msgstr"])
        if msgid and msgstr and not fuzzy:
            messages[msgid] = msgstr
    return messages


def language_of(asked: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The language to speak on a terminal: ``--lang``, else the POSIX locale variables in their
    order of precedence (LC_ALL, LC_MESSAGES, LANG; ``fr_FR.UTF-8`` is French), else the language
    the spawner gave the workspace (TRE_UI_LANGUAGE, the browser's), else English."""
    environ = os.environ if environ is None else environ
    candidates = [asked] if asked else []
    candidates += [environ.get(name) for name in ("LC_ALL", "LC_MESSAGES", "LANG", "TRE_UI_LANGUAGE")]
    for value in candidates:
        code = (value or "").split(".")[0].split("@")[0].replace("-", "_").split("_")[0].lower()
        if code in LANGUAGES:
            return code
        if asked and value is asked:
            raise ValueError(f"Unknown language {asked!r}; choose one of {', '.join(LANGUAGES)}.")
    return DEFAULT_LANGUAGE
