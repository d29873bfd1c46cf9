"""What a project's workspaces may install, and what a request may ask for: pure rules, no I/O.

The three policies are Data Safe Haven's: ``none``, ``pre-approved`` (the installation's
allowlist) and ``any-approved-on-request`` (the allowlist and every package an admin approved on a
researcher's request). A project without a policy of its own follows the installation's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from package_index.models import Policy

DEFAULT_POLICY = Policy.PRE_APPROVED
ALLOWLIST_ROOT = "allowlist"
APPROVED_ROOT = "approved"
# PEP 508 names: letters, digits, and . _ - inside
_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,198}[A-Za-z0-9])?$")

HOW_TO_ASK = ("Package {name} is not approved for project {project} in this TRE. Ask for it with "
              "`tre packages request {name} --reason WHY` in a workspace terminal, or on the catalogue's "
              "Packages page; an admin reviews each request.")
POLICY_NONE = ("Project {project}'s package policy is 'none': its workspaces install no packages. "
               "A platform admin can change it with `tre packages policy {project} pre-approved`.")


class BadRequest(ValueError):
    """A package request that cannot be recorded as written; the message says what to fix."""


def effective(installation: Policy | None, project: Policy | None) -> Policy:
    return project or installation or DEFAULT_POLICY


def roots_served(policy: Policy) -> tuple[str, ...]:
    """The index folders a workspace under ``policy`` sees, in order."""
    return {Policy.NONE: (), Policy.PRE_APPROVED: (ALLOWLIST_ROOT,),
            Policy.ON_REQUEST: (ALLOWLIST_ROOT, APPROVED_ROOT)}[policy]


def may_request(policy: Policy) -> bool:
    """Only projects whose policy takes approvals on request may file a request."""
    return policy is Policy.ON_REQUEST


@dataclass(frozen=True)
class Requirement:
    name: str  # canonical (PEP 503)
    specifier: str  # "" (any version) or a PEP 440 specifier set

    def __str__(self) -> str:
        return f"{self.name}{self.specifier}"


def requirement(name: str, version: str = "") -> Requirement:
    """A request's package as pip will see it; ``version`` is ``1.2``, ``==1.2`` or a range ``>=1,<2``."""
    name = name.strip()
    if not _NAME.match(name):
        raise BadRequest(f"{name!r} is not a package name: use the name as on PyPI, e.g. lifelines.")
    version = version.strip()
    if version and version[0].isdigit():
        try:
            Version(version)
        except InvalidVersion:
            raise BadRequest(f"{version!r} is not a version: write e.g. 0.30.0, or a range >=0.29,<0.31.") from None
        version = f"=={version}"
    try:
        spec = str(SpecifierSet(version))
    except InvalidSpecifier:
        raise BadRequest(f"{version!r} is not a version or range: write e.g. 0.30.0, or >=0.29,<0.31.") from None
    return Requirement(canonicalize_name(name), spec)


def reason_text(reason: str) -> str:
    reason = reason.strip()
    if len(reason) < 10:
        raise BadRequest("Say why the project needs this package (at least 10 characters): the admin "
                         "who reviews the request reads it.")
    if len(reason) > 2000:
        raise BadRequest("The reason is longer than 2,000 characters; keep it to what the admin needs.")
    return reason
