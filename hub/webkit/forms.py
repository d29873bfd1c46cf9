"""What is wrong with a form, said field by field, in words a person can act on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing to fix: ``message`` is the English msgid, filled with ``params`` once translated."""

    message: str
    params: dict[str, Any] = field(default_factory=dict)


Problems = dict[str, Problem]  # by form field; "form" for the form as a whole
