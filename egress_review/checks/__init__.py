"""The seam for automatic disclosure checks (the next issue): a registry of rules, empty today.

``run_checks`` runs every registered rule on a frozen file and returns their results, which are
stored with the file and shown to the checkers. With no rule registered, the review page says that
no automatic check has run on the file yet; nothing here pretends to check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CheckContext:
    """What a rule may know about the file besides its content."""

    filename: str
    kind: str  # output or supporting
    group_context: str
    group_controls: str


@dataclass(frozen=True)
class CheckResult:
    """One rule's verdict on one file, in ACRO's vocabulary (pass, review, fail)."""

    rule: str
    status: str
    summary: str
    details: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Rule = Callable[[Path, CheckContext], list[CheckResult]]
RULES: list[Rule] = []


def register(rule: Rule) -> Rule:
    RULES.append(rule)
    return rule


def run_checks(path: Path, context: CheckContext) -> list[CheckResult]:
    return [result for rule in RULES for result in rule(path, context)]
