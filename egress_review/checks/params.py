"""The rules' parameters: ACRO's defaults, overridable per project in the catalogue.

ACRO's defaults (``acro/default.yaml``): a cell needs at least 10 contributors (``safe_threshold``),
the N-K dominance rule with N=2 and K=0.9, the p-ratio with p=0.1, zeros are disclosive, and
models need 10 residual degrees of freedom. The project's ``disclosure_rules`` JSON in the
catalogue overrides any of these by name; an unknown name or a bad value is refused with a message.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from egress_review.checks.i18n import Msg


@dataclass(frozen=True)
class Params:
    threshold: int = 10
    nk_n: int = 2
    nk_k: float = 0.9
    p_ratio: float = 0.1
    zeros_are_disclosive: bool = True
    min_residual_dof: int = 10
    # Beyond ACRO: row-level data detection.
    microdata_min_rows: int = 100  # fewer rows with an identifier-like column still look like a summary
    microdata_max_rows: int = 100_000  # more rows than this is never a summary table

    @classmethod
    def from_overrides(cls, overrides: dict[str, Any] | None) -> Params:
        """ACRO's defaults with the project's overrides; ValueError names what is wrong."""
        if not overrides:
            return cls()
        if not isinstance(overrides, dict):
            raise ValueError(Msg("disclosure_rules must be a mapping of parameter names to values."))
        known = {f.name: f for f in fields(cls)}
        changes: dict[str, Any] = {}
        for name, value in overrides.items():
            if name not in known:
                raise ValueError(Msg("Unknown disclosure rule parameter {name}; known: {known}.", name=repr(name),
                                     known=", ".join(sorted(known))))
            default = getattr(cls(), name)
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ValueError(Msg("{name} must be true or false, not {value}.", name=name, value=repr(value)))
            elif isinstance(default, int):
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(Msg("{name} must be a whole number, 0 or more, not {value}.", name=name,
                                         value=repr(value)))
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(Msg("{name} must be a number between 0 and 1, not {value}.", name=name,
                                     value=repr(value)))
            changes[name] = value
        return replace(cls(), **changes)
