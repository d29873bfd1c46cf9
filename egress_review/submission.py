"""Submitting a request: what to freeze, freezing it into the store, and running the checks.

``plan`` reads the request (in the act's transaction) and says which files to freeze and with
what context; ``freeze_and_check`` does the slow part outside any transaction: each file is
copied into the store by its sha256 and every rule runs on the frozen copy. It writes no row:
``logic.Airlock.submit`` records the digests, results and new state in one commit afterwards.
The catalogue's part of the checks (the project's rule overrides, the granted dataset versions
and the project's extracts for the identifier index, the same project's earlier releases for
differencing) is read by ``inputs``. The index holds the datasets' identifying values, their
database person keys (``patient_id`` and the SNDS names for it) whether tagged or not, and the
project's own pseudonyms (``person_id`` of its extracts), which are what its outputs could leak.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from datasets import access
from datasets.grant_spec import PERSON_KEYS, PSEUDONYM

from egress_review import checks
from egress_review import data_access as db
from egress_review.checks.runner import run_checks_bounded
from egress_review.checks import tables as check_tables
from egress_review.checks.i18n import Msg
from egress_review.checks.identifiers import IdentifierIndex, identifying_columns
from egress_review.checks.params import Params
from egress_review.errors import BadInput
from egress_review.models import ExportRequest, FileKind, RequestFile
from egress_review.store import PathRefused, Store, check_workspace_file

log = logging.getLogger("tre.egress")
M = Msg
Frozen = dict[int, tuple[str, int, list[dict[str, Any]]]]  # file id -> sha256, size, check results


@dataclass(frozen=True)
class Pending:
    """A file to freeze: its id, path in the workspace and what the rules know of it."""

    file_id: int
    path: str
    check: checks.CheckContext


@dataclass(frozen=True)
class CheckInputs:
    """The catalogue's part of the checks: overrides, granted dataset versions, earlier releases."""

    rules: dict[str, Any]
    datasets: tuple[tuple[str, str, str, tuple[str, ...]], ...]  # slug, version, storage path, columns
    released: tuple[checks.Released, ...]
    extracts: tuple[tuple[str, str], ...] = ()  # the project's extracts: path under the extracts root, root hash


def workspace_size(workspace: Path, path: str, limit: int) -> int:
    try:
        return check_workspace_file(workspace, path, limit)
    except PathRefused as refused:
        raise BadInput(refused.args[0]) from None


def plan(request: ExportRequest, workspace: Path, max_file_bytes: int, max_request_bytes: int) -> list[Pending]:
    """The files still to freeze; refuses a request that is not complete or is too large."""
    if not any(f.kind == FileKind.OUTPUT for f in request.files):
        raise BadInput(M("Add at least one output file before submitting the request."), "submit")
    used = {f.group_name for f in request.files}
    for group in request.groups:
        if group.name in used and not (group.context and group.controls):
            raise BadInput(M("Group “{group}” needs both its context (what the files are) and its controls "
                             "(which disclosure control was applied) before the request is submitted.",
                             group=group.name), "group:" + group.name)
    total, pending = 0, []
    for f in request.files:
        if f.sha256 is None:
            total += workspace_size(workspace, f.path, max_file_bytes)
            pending.append(pending_of(request, f))
        else:
            total += f.size or 0
    if total > max_request_bytes:
        raise BadInput(M("The request's files add up to {total} bytes, over the limit of {limit}; split it or "
                         "export smaller summaries.", total=total, limit=max_request_bytes), "submit")
    return pending


def pending_of(request: ExportRequest, f: RequestFile) -> Pending:
    """One file to freeze and check, with what its group says of it."""
    group = next((g for g in request.groups if g.name == f.group_name), None)
    return Pending(f.id, f.path, checks.CheckContext(f.name, f.kind.value, group.context if group else "",
                                                     group.controls if group else ""))


def inputs(session: Session, project_slug: str, today: dt.date, store: Store,
           username: str | None = None) -> CheckInputs:
    """What the rules need from the catalogue, read in the submission's transaction: the dataset
    versions the project's member may use today, as the access module answers it for a workspace
    (grant in force, for the version it names); without a person (``tre check --project`` on the
    hub), the first member's answer, the project's datasets being the same for all its members."""
    project = db.project(session, project_slug)
    granted: tuple[access.GrantedDataset, ...] = ()
    for person in [username] if username else db.members(session, project_slug):
        try:
            granted = access.workspace_access(session, person, project_slug, today).datasets
            break
        except access.AccessRefused:
            continue
    datasets = tuple(sorted({(g.slug, g.version, str(g.storage_path),
                              tuple(identifying_columns(db.dataset_columns(session, g.slug)))) for g in granted}))
    released = tuple(checks.Released(Msg("request {request}, {path}", request=rid, path=path),
                                     store.path_of(sha), Path(path).name)
                     for rid, path, sha in db.released_outputs(session, project_slug)
                     if Path(path).suffix.lower() in check_tables.TABLE_SUFFIXES)
    return CheckInputs(dict(project.disclosure_rules or {}) if project else {}, datasets, released,
                       tuple(db.ready_extracts(session, project_slug)))


class Checker:
    """Runs the rules with the project's parameters and the identifier index of its datasets."""

    def __init__(self, store: Store, data_root: Path | None, checks_cache: Path | None,
                 extracts_root: Path | None = None) -> None:
        self.store, self.data_root, self.checks_cache = store, data_root, checks_cache
        self.extracts_root = extracts_root

    def freeze_and_check(self, workspace: Path, pending: list[Pending], inputs_: CheckInputs,
                         max_file_bytes: int) -> Frozen:
        frozen: Frozen = {}
        extra, context = self.context(inputs_) if pending else ([], None)
        for item in pending:
            try:
                done = self.store.freeze(workspace, item.path, max_file_bytes)
            except PathRefused as refused:
                raise BadInput(refused.args[0]) from None
            file_context = replace(context, filename=item.check.filename, kind=item.check.kind,
                                   group_context=item.check.group_context, group_controls=item.check.group_controls)
            found = run_checks_bounded(self.store.path_of(done.sha256), file_context) + extra
            frozen[item.file_id] = (done.sha256, done.size, [r.as_dict() for r in found])
        return frozen

    def context(self, inputs_: CheckInputs) -> tuple[list[checks.CheckResult], checks.CheckContext]:
        """The project's parameters, identifier index and earlier releases; a problem is a review note."""
        notes: list[checks.CheckResult] = []
        try:
            params = Params.from_overrides(inputs_.rules)
        except ValueError as wrong:
            params = Params()
            notes.append(checks.result("parameters", checks.REVIEW, Msg(
                "The project's disclosure_rules are wrong ({error}); ACRO's defaults were used. Ask a data steward "
                "to fix them.", error=wrong.args[0] if wrong.args else str(wrong))))
        identifiers = None
        datasets = inputs_.datasets if self.data_root is not None else ()
        cached = self.checks_cache is not None or self.data_root is not None
        extracts = inputs_.extracts if self.extracts_root is not None and cached else ()
        if datasets or extracts:
            try:
                identifiers = IdentifierIndex.merge([*(self.index_of(*d) for d in datasets),
                                                     *(self.index_of_extract(*e) for e in extracts)])
            except Exception as error:  # noqa: BLE001 - a missing dataset file must not block the request
                log.exception("Identifier index not built")
                notes.append(checks.result("identifier-leak", checks.REVIEW, Msg(
                    "The identifier index of the project's datasets could not be built ({error}); check identifiers "
                    "by hand.", error=str(error))))
        return notes, checks.CheckContext("", params=params, identifiers=identifiers, released=inputs_.released)

    def index_of(self, slug: str, version: str, storage_path: str, columns: tuple[str, ...]) -> IdentifierIndex:
        """One dataset version's index: built once from its Parquet files, then read from the cache."""
        assert self.data_root is not None
        # "keys": the person keys are in it whether the catalogue tags them or not (older caches lack them)
        cache = self._cache() / f"{slug}@{version}.keys.arrow"
        if cache.exists():
            return IdentifierIndex.load(cache)
        wanted = set(columns)
        index = self._index(self.data_root / storage_path, lambda name: name in wanted or name.lower() in PERSON_KEYS)
        index.save(cache)
        log.info("Identifier index of %s@%s: %d values", slug, version, len(index))
        return index

    def index_of_extract(self, path: str, root_hash: str) -> IdentifierIndex:
        """The project's pseudonyms in one of its extracts; an extract never changes once built (a
        rebuild is a new root hash), so its index is cached by root hash."""
        assert self.extracts_root is not None
        cache = self._cache() / f"extract-{root_hash}.arrow"
        if cache.exists():
            return IdentifierIndex.load(cache)
        index = self._index(self.extracts_root / path, lambda name: name == PSEUDONYM)
        index.save(cache)
        log.info("Pseudonym index of extract %s: %d values", path, len(index))
        return index

    def _cache(self) -> Path:
        return (self.checks_cache or self.data_root / ".checks") / "identifiers"

    @staticmethod
    def _index(folder: Path, chosen: Callable[[str], bool]) -> IdentifierIndex:
        import pyarrow.parquet as pq

        sources = []
        for path in sorted(folder.rglob("*.parquet")):  # every partition of every table
            sources.append((path, [c for c in pq.read_schema(path).names if chosen(c)]))
        return IdentifierIndex.from_parquet(sources)
