"""The refusals of the egress review, each with the HTTP status the service gives it.

Their message (a translatable ``checks.i18n.Msg``: English msgid and parameters) says what is wrong and what to do.
"""

from __future__ import annotations


class NotFound(LookupError):
    """Nothing by that name that this person may see (HTTP 404)."""


class Forbidden(PermissionError):
    """This person may not do this (HTTP 403); the message says why."""


class BadInput(ValueError):
    """The input is wrong (HTTP 400); the message says what to change, and ``field`` (the second
    argument, when given) which field of the form holds it, so a page shows it beside that field."""

    @property
    def field(self) -> str | None:
        return self.args[1] if len(self.args) > 1 else None


class StateConflict(ValueError):
    """The request's state does not allow this step (HTTP 409); the message says what it is."""
