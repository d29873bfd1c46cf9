"""Refusals people read, translatable: the English text is the msgid, the values fill it in.

A ``Message`` is the English sentence (so tests and logs read it as a string) that still knows
its msgid and parameters, so the pages and the API can say it in the reader's language.
"""

from __future__ import annotations

from typing import Any

from datasets.i18n import translate


class Message(str):
    template: str
    params: dict[str, Any]

    @classmethod
    def of(cls, template: str, **params: Any) -> Message:
        message = cls(template.format(**params))
        message.template, message.params = template, params
        return message

    def said_in(self, language: str) -> str:
        return translate(language, self.template, **self.params)


def said_in(language: str, text: object) -> str:
    """Any refusal in ``language``: a Message is translated, anything else shown as it is."""
    return text.said_in(language) if isinstance(text, Message) else str(text)
