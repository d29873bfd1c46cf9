"""The catalogue's workflow: every change of who may see what goes through here, audited.

As in OpenSAFELY Airlock, *who may act* (``permissions``) is kept apart from *what the state
allows* (``PROJECT_TRANSITIONS``), and state changes only through these functions. A decision is
taken with a conditional UPDATE, so two stewards deciding the same application at once yield one
decision. Every function runs in the caller's transaction and writes its audit row there: the act
and its record commit together or not at all.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from datasets import audit, requested_data
from datasets.access import projects_tied_to
from datasets.audit import AuditAction
from datasets.grant_spec import GrantSpec, SpecError, parse_spec
from datasets.manifest import Manifest
from datasets.models import (SLUG, Dataset, DatasetVersion, Grant, Membership, MembershipRecord, MemberRole, Person,
                             Project, ProjectStatus, VersionStatus)
from datasets.versions import record_version
from tre_core.i18n import translate

S = ProjectStatus
PROJECT_TRANSITIONS: dict[ProjectStatus, frozenset[ProjectStatus]] = {
    S.REQUESTED: frozenset({S.ACTIVE, S.CLOSED}),  # only by approve (grants recorded) or refuse
    S.APPROVED: frozenset({S.ACTIVE, S.SUSPENDED, S.CLOSED}),
    S.ACTIVE: frozenset({S.SUSPENDED, S.CLOSED}),
    S.SUSPENDED: frozenset({S.ACTIVE, S.CLOSED}),
    S.CLOSED: frozenset(),
}


class WorkflowError(ValueError):
    """An act the rules do not allow; the message says why and what to do instead.

    The message is an English msgid with ``{name}`` parameters (French in ``tre_core/locale``):
    ``str()`` is the English, ``said_in(language)`` the person's language."""

    def __init__(self, message: str, **params: object) -> None:
        self.message, self.params = message, params
        super().__init__(message.format(**params) if params else message)

    def said_in(self, language: str) -> str:
        try:
            return translate(language, self.message, **self.params)
        except (KeyError, IndexError, ValueError):  # an English-only message with braces of its own
            return str(self)


class PermissionDenied(WorkflowError):
    pass


# --- who may act ------------------------------------------------------------------------------


def _person(session: Session, username: str) -> Person:
    person = session.get(Person, username)
    if person is None:
        raise WorkflowError(f"{username} is not in the catalogue; an admin adds people first.")
    return person


def require_steward(session: Session, actor: str) -> Person:
    person = _person(session, actor)
    if not (person.is_data_steward or person.is_admin):
        raise PermissionDenied(f"{actor} is not a data steward; only data stewards decide on projects and grants.")
    return person


NOT_INDEPENDENT = ("{actor} is a member of project {project}, was one, or applied for it, so another data steward "
                   "must decide on it: nobody approves, grants or adds members to their own project.")
NO_APPROVAL_REFERENCE = ("A grant cites its approval reference (an ethics committee decision, say); give it with "
                         "the grant.")


def require_independent(session: Session, actor: str, project: Project) -> None:
    """Separation of duties: nobody decides on a project they belong to, belonged to or applied for."""
    if project.slug in projects_tied_to(session, actor) or actor == project.applicant:
        raise PermissionDenied(NOT_INDEPENDENT, actor=actor, project=project.slug)


def require_admin(session: Session, actor: str) -> Person:
    person = _person(session, actor)
    if not person.is_admin:
        raise PermissionDenied(f"{actor} is not an admin; only admins change platform roles.")
    return person


# --- what the state allows ------------------------------------------------------------------


def _project(session: Session, slug: str) -> Project:
    project = session.get(Project, slug)
    if project is None:
        raise WorkflowError(f"There is no project {slug}; `tre catalogue projects` lists them.")
    return project


def _move(session: Session, project: Project, to: ProjectStatus, **values) -> None:
    """Change a project's status if, and only if, it is still what we read: the first of two
    concurrent deciders wins and the second is told what happened."""
    if to not in PROJECT_TRANSITIONS[project.status]:
        raise WorkflowError(f"Project {project.slug} is {project.status.value}; it cannot become {to.value}.")
    if to is ProjectStatus.CLOSED:  # its retention period runs from today (datasets/retention.py)
        values.setdefault("closed_on", dt.date.today())
    done = session.execute(
        update(Project).where(Project.slug == project.slug, Project.status == project.status)
        .values(status=to, **values).execution_options(synchronize_session=False)
    ).rowcount
    if done != 1:
        raise WorkflowError(f"Project {project.slug} changed while you were deciding; look at it again.")
    session.refresh(project)


# --- applications --------------------------------------------------------------------------


@dataclass
class ApplicationForm:
    slug: str
    title: str
    lay_summary: str
    purpose: str
    public_interest: str
    datasets: list[str]
    members: list[str] = field(default_factory=list)
    starts_on: dt.date | None = None
    ends_on: dt.date | None = None
    # What it asks of each dataset, as ``grant_spec.parse_spec`` reads it ({dataset: {tables, period,
    # justification, ...}}); None asks for whole datasets (the CLI and older callers).
    specs: dict[str, dict] | None = None


def checked_specs(session: Session, specs: dict[str, dict]) -> dict[str, dict]:
    """Each dataset's request checked against its newest version: {dataset: GrantSpec JSON}, or the
    first problem as a WorkflowError in the reader's language."""
    checked = {}
    for slug, data in sorted(specs.items()):
        schema = requested_data.schema_of(session, slug)
        if schema is None:
            raise WorkflowError("Dataset {dataset} has no registered version to ask variables of.", dataset=slug)
        try:
            checked[slug] = requested_data.check(data, schema).to_json()
        except SpecError as refused:
            raise WorkflowError(refused.message.msgid, **refused.message.params) from None
    return checked


def apply_for_project(session: Session, applicant: str, form: ApplicationForm) -> Project:
    """A researcher applies: the project exists as *requested*, with its members, and no data."""
    person = _person(session, applicant)
    problems = []
    if not re.fullmatch(SLUG, form.slug):
        problems.append(f"{form.slug!r} cannot be a project's short name: use 3 to 64 lowercase letters, "
                        "digits and dashes, starting with a letter")
    elif session.get(Project, form.slug) is not None:
        problems.append(f"a project called {form.slug} exists already; choose another short name")
    unknown = sorted(set(form.datasets) - set(session.scalars(select(Dataset.slug))))
    if unknown:
        problems.append(f"no dataset called {', '.join(unknown)} in the catalogue")
    if not form.datasets:
        problems.append("name at least one dataset")
    strangers = sorted(set(form.members) - set(session.scalars(select(Person.username))))
    if strangers:
        problems.append(f"{', '.join(strangers)} not in the catalogue")
    if form.starts_on and form.ends_on and form.ends_on < form.starts_on:
        problems.append("the end date is before the start date")
    for name in ("title", "lay_summary", "purpose", "public_interest"):
        if not getattr(form, name).strip():
            problems.append(f"{name.replace('_', ' ')} is empty")
    if form.specs is not None and set(form.specs) != set(form.datasets):
        problems.append("the variables asked for name other datasets than the application")
    if problems:
        raise WorkflowError("The application cannot be recorded: " + "; ".join(problems) + ".")
    specs = checked_specs(session, form.specs) if form.specs is not None else None
    project = Project(
        slug=form.slug, title=form.title, lay_summary=form.lay_summary, purpose=form.purpose,
        public_interest=form.public_interest, principal_investigator=person.display_name,
        starts_on=form.starts_on, ends_on=form.ends_on, status=S.REQUESTED, applicant=applicant,
        requested_datasets=sorted(set(form.datasets)), requested_specs=specs,
    )
    session.add(project)
    session.flush()
    join(session, applicant, project, applicant, MemberRole.PRINCIPAL_INVESTIGATOR, audited=False)
    for username in sorted(set(form.members) - {applicant}):
        join(session, applicant, project, username, MemberRole.RESEARCHER, audited=False)
    details = {"datasets": project.requested_datasets, "members": [m.username for m in project.memberships]}
    if specs is not None:
        details["request"] = requested_data.described(specs)
    audit.record(session, applicant, AuditAction.PROJECT_APPLIED, project=form.slug, details=details)
    return project


def amend_request(session: Session, steward: str, slug: str, specs: dict[str, dict]) -> Project:
    """Before deciding, a steward changes what an application asks of each dataset (variables,
    period, justification; a dataset left out is no longer asked for). Checked against each
    dataset's newest version; refused whole, changing nothing, at the first problem."""
    require_steward(session, steward)
    project = _project(session, slug)
    if project.status is not S.REQUESTED:
        raise WorkflowError("Project {project} is {status}: only an application awaiting a decision is amended.",
                            project=slug, status=project.status.value)
    require_independent(session, steward, project)
    if not specs:
        raise WorkflowError("An application asks for at least one dataset; refuse it instead.")
    checked = checked_specs(session, specs)
    before = requested_data.described(project.requested_specs) if project.requested_specs is not None else {
        d: "whole dataset" for d in project.requested_datasets}
    project.requested_specs, project.requested_datasets = checked, sorted(checked)
    session.flush()
    audit.record(session, steward, AuditAction.PROJECT_REQUEST_AMENDED, project=slug,
                 details={"before": before, "after": requested_data.described(checked)})
    return project


def approve(session: Session, steward: str, slug: str, *, approval_reference: str,
            starts_on: dt.date, ends_on: dt.date) -> Project:
    """The steward approves: the requested datasets are granted for the period, members can start."""
    require_steward(session, steward)
    project = _project(session, slug)
    if project.status is not S.REQUESTED:
        raise WorkflowError(f"Project {slug} is {project.status.value}: it was decided already; "
                            "grant datasets to it with “projects grant” instead.")
    require_independent(session, steward, project)
    if not approval_reference.strip():
        raise WorkflowError("An approval cites its reference (an ethics committee decision, say).")
    if ends_on < starts_on:
        raise WorkflowError(f"The grants would end ({ends_on}) before they start ({starts_on}).")
    # the project's period is the one approved, which may be shorter than the one asked for
    _move(session, project, S.ACTIVE, approval_reference=approval_reference, decided_by=steward,
          starts_on=starts_on, ends_on=ends_on)
    granted = {}
    for dataset in project.requested_datasets:
        # exactly what was asked (and amended), checked again against the version granted
        asked = project.requested_specs[dataset] if project.requested_specs is not None else None
        try:
            grant = add_grant(session, steward, slug, dataset, starts_on=starts_on, ends_on=ends_on,
                              approval_reference=approval_reference, audited=False,
                              spec=requested_data.request_data(GrantSpec.from_json(asked)) if asked else None)
        except SpecError as refused:
            raise WorkflowError("What the application asks of {dataset} does not fit its newest version ({reason}); "
                                "amend the request first.", dataset=dataset, reason=refused.message) from None
        if grant.spec is not None:
            granted[dataset] = grant.spec
    details = {"approval_reference": approval_reference, "datasets": project.requested_datasets,
               "from": starts_on.isoformat(), "until": ends_on.isoformat()}
    if granted:
        details["granted"] = requested_data.described(granted)
    audit.record(session, steward, AuditAction.PROJECT_APPROVED, project=slug, details=details)
    return project


def refuse(session: Session, steward: str, slug: str, *, reason: str) -> Project:
    require_steward(session, steward)
    project = _project(session, slug)
    if project.status is not S.REQUESTED:
        raise WorkflowError(f"Project {slug} is {project.status.value}, not an application; close it instead.")
    if not reason.strip():
        raise WorkflowError("A refusal gives its reason, for the applicant.")
    _move(session, project, S.CLOSED, decided_by=steward, decision_reason=reason)
    audit.record(session, steward, AuditAction.PROJECT_REFUSED, project=slug, details={"reason": reason})
    return project


def set_status(session: Session, steward: str, slug: str, status: ProjectStatus, *, reason: str) -> Project:
    """Suspend, reactivate or close a project; the reconciler stops its servers within a minute."""
    require_steward(session, steward)
    project = _project(session, slug)
    if project.status is S.REQUESTED and status is not S.CLOSED:
        # an application has no approval reference and no grants: only approve() gives them
        raise WorkflowError(f"Project {slug} is an application: approve it (with its approval reference) "
                            "or refuse it.")
    _move(session, project, status, decision_reason=reason, decided_by=steward)
    audit.record(session, steward, AuditAction.PROJECT_STATUS, project=slug,
                 details={"status": status.value, "reason": reason})
    return project


# --- members and grants ----------------------------------------------------------------------


def join(session: Session, actor: str, project: Project, username: str, role: MemberRole,
         audited: bool = True) -> Membership:
    """Make ``username`` a member, with the record of it (when, by whom) in the membership history
    and (unless the caller's own audit row names the members) one audit row."""
    membership = Membership(project_slug=project.slug, username=username, role=role)
    project.memberships.append(membership)
    session.add(MembershipRecord(project_slug=project.slug, username=username, role=role.value,
                                 added_at=dt.datetime.now(dt.UTC), added_by=actor))
    session.flush()
    if audited:
        audit.record(session, actor, AuditAction.MEMBER_ADDED, project=project.slug,
                     details={"user": username, "role": role.value})
    return membership


def leave(session: Session, actor: str, membership: Membership) -> None:
    """End a membership; its record in the history stays, with when it ended and who ended it."""
    for record in session.scalars(select(MembershipRecord).where(
            MembershipRecord.project_slug == membership.project_slug,
            MembershipRecord.username == membership.username, MembershipRecord.removed_at.is_(None))):
        record.removed_at, record.removed_by = dt.datetime.now(dt.UTC), actor
    session.delete(membership)
    session.flush()
    audit.record(session, actor, AuditAction.MEMBER_REMOVED, project=membership.project_slug,
                 details={"user": membership.username})


def add_member(session: Session, steward: str, slug: str, username: str,
               role: MemberRole = MemberRole.RESEARCHER) -> Membership:
    require_steward(session, steward)
    project, _ = _project(session, slug), _person(session, username)
    require_independent(session, steward, project)
    if session.get(Membership, (slug, username)):
        raise WorkflowError(f"{username} is a member of {slug} already.")
    return join(session, steward, project, username, role)


def remove_member(session: Session, steward: str, slug: str, username: str) -> None:
    require_steward(session, steward)
    membership = session.get(Membership, (slug, username))
    if membership is None:
        raise WorkflowError(f"{username} is not a member of {slug}.")
    leave(session, steward, membership)


def add_grant(session: Session, steward: str, slug: str, dataset_slug: str, *, starts_on: dt.date,
              ends_on: dt.date, approval_reference: str, audited: bool = True,
              version: str | None = None, spec: dict | None = None) -> Grant:
    """Grant a project one version of a dataset (by default its newest): what ``spec`` names
    (datasets/grant_spec.py, checked against the version's manifest; ``SpecError`` refuses it
    before anything changes), or the whole version without one."""
    require_steward(session, steward)
    project = _project(session, slug)
    require_independent(session, steward, project)
    if not approval_reference.strip():
        raise WorkflowError(NO_APPROVAL_REFERENCE)
    dataset = session.get(Dataset, dataset_slug)
    if dataset is None:
        raise WorkflowError(f"There is no dataset {dataset_slug}; `tre datasets list` lists them.")
    if ends_on < starts_on:
        raise WorkflowError(f"The grant would end ({ends_on}) before it starts ({starts_on}).")
    version = version or dataset.version
    registered = session.get(DatasetVersion, (dataset_slug, version))
    if registered is None or registered.status is not VersionStatus.ACTIVE:
        state = "not registered" if registered is None else registered.status.value
        raise WorkflowError(f"Dataset {dataset_slug} {version} is {state}; grant an active version "
                            "(`tre datasets show` lists them).")
    checked = checked_spec(dataset, registered, spec) if spec is not None else None
    grant = Grant(project_slug=slug, dataset_slug=dataset_slug, dataset_version=version,
                  starts_on=starts_on, ends_on=ends_on, approved_by=steward, approval_reference=approval_reference,
                  spec=checked.to_json() if checked else None)
    project.grants.append(grant)
    session.flush()
    if audited:
        audit.record(session, steward, AuditAction.GRANT_ADDED, project=slug, details={
            "dataset": dataset_slug, "version": version, "from": starts_on.isoformat(),
            "until": ends_on.isoformat(), "approval_reference": approval_reference,
            **({"spec": checked.describe(), "spec_digest": checked.digest(),
                "justification": checked.justification} if checked else {})})
    return grant


def checked_spec(dataset: Dataset, version: DatasetVersion, data: dict) -> GrantSpec:
    """A spec written by a person, checked against the version's manifest and the dataset's column tags."""
    tags = {c["name"]: c.get("identifier") for c in dataset.columns or [] if isinstance(c, dict) and "name" in c}
    return parse_spec(data, version.tables, tags or None)


def set_grant_spec(session: Session, steward: str, grant_id: int, data: dict | None) -> Grant:
    """Amend what a grant gives (None: the whole dataset version). The spec is checked first: a
    refusal (``SpecError``, English and French, naming the field) changes nothing."""
    require_steward(session, steward)
    grant = session.get(Grant, grant_id)
    if grant is None:
        raise WorkflowError(f"There is no grant {grant_id}.")
    require_independent(session, steward, grant.project)
    registered = session.get(DatasetVersion, (grant.dataset_slug, grant.dataset_version))
    if registered is None:
        raise WorkflowError(f"Dataset {grant.dataset_slug} {grant.dataset_version} is not registered; "
                            "grant an active version.")
    checked = checked_spec(grant.dataset, registered, data) if data is not None else None
    grant.spec = checked.to_json() if checked else None
    session.flush()
    audit.record(session, steward, AuditAction.GRANT_CHANGED, project=grant.project_slug, details={
        "dataset": grant.dataset_slug, "from": grant.starts_on.isoformat(), "grant": grant.id,
        "spec": checked.describe() if checked else "whole dataset",
        "spec_digest": checked.digest() if checked else None,
        "justification": checked.justification if checked else None})
    return grant


def revoke_grant(session: Session, steward: str, slug: str, dataset_slug: str, *, today: dt.date | None = None) -> int:
    """End the project's grants of a dataset as of yesterday; the record of them stays."""
    require_steward(session, steward)
    today = today or dt.date.today()
    grants = [g for g in _project(session, slug).grants if g.dataset_slug == dataset_slug and g.in_force(today)]
    if not grants:
        raise WorkflowError(f"Project {slug} has no grant of {dataset_slug} in force.")
    for grant in grants:
        grant.ends_on = max(grant.starts_on - dt.timedelta(days=1), today - dt.timedelta(days=1))
    session.flush()
    audit.record(session, steward, AuditAction.GRANT_REVOKED, project=slug, details={"dataset": dataset_slug})
    return len(grants)


def register_dataset(session: Session, steward: str, dataset: Dataset, manifest: Manifest,
                     data_root: Path | None = None) -> Dataset:
    """Add a dataset, or a new version of one beside the versions already there, with the
    manifest of its whole tree; its files become read-only."""
    require_steward(session, steward)
    if session.get(DatasetVersion, (dataset.slug, dataset.version)) is not None:
        raise WorkflowError(f"Dataset {dataset.slug} {dataset.version} is registered already; "
                            "a changed dataset is registered as a new version.")
    existing = session.get(Dataset, dataset.slug)
    if existing is not None:
        for name in ("title", "description", "data_controller", "sensitivity", "version", "storage_path", "licence"):
            value = getattr(dataset, name)
            setattr(existing, name, "" if value is None else value)
        if dataset.columns:  # the new version's columns and tags (datasets/column_tags.py)
            existing.columns = dataset.columns
        dataset = existing
    record_version(session, dataset, manifest, steward, data_root)
    audit.record(session, steward, AuditAction.DATASET_REGISTERED, details={
        "dataset": dataset.slug, "version": dataset.version, "root_hash": manifest.root_hash,
        "files": len(manifest.files), "bytes": manifest.byte_count, "rows": manifest.row_count})
    return dataset


def set_checker(session: Session, admin: str, username: str, accredited_until: dt.date | None) -> Person:
    """Accredit an output checker until a date, or (None) withdraw the role."""
    require_admin(session, admin)
    person = _person(session, username)
    if accredited_until is not None and accredited_until < dt.date.today():
        raise WorkflowError(f"The accreditation would have ended on {accredited_until}; give an end date "
                            "in the future, or remove the checker.")
    person.checker_accredited_until = accredited_until
    session.flush()
    audit.record(session, admin, AuditAction.ROLE_CHANGED, details={
        "user": username, "role": "output_checker",
        "until": accredited_until.isoformat() if accredited_until else None})
    return person
