"""Facts about this process added to every audit row it writes (the ``tre`` command sets them)."""

from __future__ import annotations

_context: dict[str, str] = {}


def set_context(**values: str) -> None:
    """The ``tre`` command adds the host account that ran it, since its ``--as`` names the person
    acted for, not who typed the command."""
    _context.update(values)


def context() -> dict[str, str]:
    return dict(_context)
