"""The pages of the egress review: the researcher's requests, the checker's queue and review page,
the frozen files shown for review and the released files. Each form posts to an act of
``logic.Airlock``; a refusal comes back as a page that says what to do."""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

from tornado.web import HTTPError

from egress_review import render
from egress_review.policies import AWAITING_CHECKERS
from egress_review.site import MAX_ID, Base
from egress_review.zip_stream import stream_zip


# Where each form's refusal is shown when the act names no field (the add-file form: beside the path).
FIELD_OF_STEP = {"files": "path", "replace": "file", "remove": "file", "comments": "text", "submit": "submit",
                 "withdraw": "withdraw", "reviews": "review", "return": "return", "reject": "reject",
                 "release": "release"}
REVIEW_STEPS = ("reviews", "return", "reject", "release")
CONFIRMED_STEPS = ("release", "withdraw", "reject")  # asked again before they are done
EXCERPT_ROWS = 50


class Page(Base):
    page_name = ""
    back_to = ""  # the page a refusal links back to (the request's, once known)

    async def prepare(self) -> None:
        await super().prepare()
        if self.current_user is None:
            if self.request.method in ("GET", "HEAD"):
                self.redirect(self.get_login_url())
                return
            raise HTTPError(403, "%s", self.text("Sign in first, then send the form again."))
        self.exports, self.reviews = await self.site.run(self.site.airlock.roles, self.username)
        self.waiting = await self.site.run(self.site.airlock.waiting_count, self.username)

    def page_values(self) -> dict[str, Any]:
        return {"user": self.current_user, "waiting": getattr(self, "waiting", 0),
                "exports": getattr(self, "exports", True), "reviews": getattr(self, "reviews", False)}

    def error_page_values(self) -> dict[str, Any]:
        # the hub's answer as cached by prepare, never a new question (the error may be that it failed)
        return {"user": getattr(self, "_hub_auth_user_cache", None), "waiting": getattr(self, "waiting", 0),
                "exports": getattr(self, "exports", True), "reviews": getattr(self, "reviews", False),
                "back_to": self.back_to}

    def numbered_fields(self, prefix: str) -> dict[int, str]:
        """The form's fields ``<prefix><file id>``, by file id; a name that is not one is refused."""
        found = {}
        for name, value in self.request.body_arguments.items():
            if name.startswith(prefix):
                number = name.removeprefix(prefix)
                if not (number.isascii() and number.isdigit()) or int(number) > MAX_ID:
                    raise HTTPError(400, "%s", self.text(
                        "The form field “{name}” does not name a file by its number; reload the page and send "
                        "the form again.", name=name))
                found[int(number)] = value[0].decode()
        return found

    # --- the two pages of a request, shown again with what was typed when a form is refused ---------

    async def show_request(self, rid: int, status: int = 200, problems: dict[str, str] | None = None,
                           typed: dict[str, str] | None = None, confirm: str = "") -> None:
        view = await self.act(self.site.airlock.get, rid)
        typed = typed or {}
        folder = typed.get("folder", self.get_query_argument("folder", "")).strip("/")
        listings: dict[str, list[Any]] = {}
        browse_problem = None
        if view.may_edit:
            parts = [p for p in folder.split("/") if p]
            for level in ["/".join(parts[:i]) for i in range(len(parts) + 1)]:
                try:
                    listings[level] = await self.act(self.site.airlock.browse, view.project, level)
                except HTTPError as refused:
                    browse_problem = refused.log_message % refused.args
                    break
        copies = await self.act(self.site.airlock.checked_copies, rid)
        excerpts = {f.id: await self.site.run(excerpt_of, copies[f.id], f.name, f.checks)
                    for f in view.files if f.id in copies and render.view_kind(f.name) == "table"
                    and flagged_cells(f.checks)}
        self.show("request.html", status, request=view, folder=folder, listings=listings,
                  browse_problem=browse_problem, excerpts={k: v for k, v in excerpts.items() if v},
                  flags={f.id: flagged_cells(f.checks) for f in view.files},
                  done=self.get_query_argument("done", ""), problems=problems or {}, typed=typed, confirm=confirm)

    async def show_review(self, rid: int, status: int = 200, problems: dict[str, str] | None = None,
                          typed: dict[str, str] | None = None, confirm: str = "") -> None:
        view = await self.act(self.site.airlock.get, rid)
        shown: dict[int, dict[str, Any]] = {}
        # contents only while the request awaits its checkers (the airlock refuses them otherwise)
        for f in view.files if view.state in AWAITING_CHECKERS else ():
            if f.sha256 is None:
                continue
            kind = render.view_kind(f.name)
            entry: dict[str, Any] = {"kind": kind}
            if kind in ("table", "text"):
                _, path = await self.act(self.site.airlock.frozen_file, view.id, f.id)
                if kind == "table":
                    entry["rows"], entry["more"] = await self.site.run(render.table_rows, path, f.name)
                else:
                    entry["text"], entry["more"] = await self.site.run(render.text_of, path)
            entry["flagged"] = flagged_cells(f.checks)
            shown[f.id] = entry
        self.show("review.html", status, request=view, shown=shown, done=self.get_query_argument("done", ""),
                  problems=problems or {}, typed=typed or {}, confirm=confirm)


class HomePage(Page):
    page_name = "home"

    async def get(self) -> None:
        if self.reviews and not self.exports:  # a checker's work is the queue
            self.redirect(self.site.prefix + "queue")
            return
        views = await self.act(self.site.airlock.list_requests)
        projects = set(await self.act(self.site.airlock.my_projects))
        mine = [v for v in views if v.project in projects]
        queue = await self.act(self.site.airlock.queue) if self.reviews else []
        self.show("home.html", requests=mine, queue=queue)


class NewRequestPage(Page):
    page_name = "new"

    async def get(self) -> None:
        self.show("new.html", projects=await self.act(self.site.airlock.my_projects), problems={}, title="",
                  chosen="")

    async def post(self) -> None:
        project, title = self.get_body_argument("project", ""), self.get_body_argument("title", "")
        try:
            request_id = await self.act(self.site.airlock.create, project, title)
        except HTTPError as refused:
            if refused.status_code not in (400, 403):
                raise
            # a title to fix (400) or a project not one's own (403): beside its field, what was typed kept
            field = "title" if refused.status_code == 400 else "project"
            self.show("new.html", refused.status_code, projects=await self.act(self.site.airlock.my_projects),
                      problems={field: refused.log_message % refused.args}, title=title, chosen=project)
            return
        self.see_other(f"requests/{request_id}")


class RequestPage(Page):
    """A request as the researcher sees it: state, groups, files with their automatic checks, the
    project folder as a tree to add files from, comments, and what they may do."""

    page_name = "request"

    async def get(self, request_id: str) -> None:
        await self.show_request(self.ident(request_id))


class RequestFormPage(Page):
    """Every form of a request's pages posts here. Done: back to the page (POST, redirect, GET).
    Refused (400, 409): the same page again, the message beside the field, everything typed kept.
    Release, withdraw and reject are asked again (a confirmation that needs no script)."""

    async def post(self, request_id: str, step: str) -> None:
        rid, airlock, arg = self.ident(request_id), self.site.airlock, self.get_body_argument
        review_side = step in REVIEW_STEPS
        back = f"reviews/{rid}" if review_side else f"requests/{rid}"
        self.back_to = back
        typed = {name: values[0].decode(errors="replace") for name, values in self.request.body_arguments.items()
                 if name != "_xsrf"}
        if step in CONFIRMED_STEPS and arg("confirmed", "") != "yes":
            shown = self.show_review if review_side else self.show_request
            await shown(rid, typed=typed, confirm=step)
            return
        try:
            await self.step(rid, step, airlock, arg)
        except HTTPError as refused:
            if refused.status_code not in (400, 409):
                raise
            field = getattr(refused, "field", None) or FIELD_OF_STEP.get(step, step)
            if step in ("replace", "remove") and field == "file":  # beside the file's row, if it names one
                named = arg("file", "")
                field = f"file-{named}" if named.isascii() and named.isdigit() else "form"
            if step == "group":
                field = "group:" + arg("group", "")
            shown = self.show_review if review_side else self.show_request
            await shown(rid, refused.status_code, problems={field: refused.log_message % refused.args}, typed=typed)
            return
        self.see_other(back, done=step)

    async def step(self, rid: int, step: str, airlock: Any, arg: Any) -> None:
        if step == "files":
            await self.act(airlock.add_file, rid, arg("pick", "") or arg("path", ""), arg("group", ""),
                           arg("kind", ""), arg("context", "") or None, arg("controls", "") or None)
        elif step == "group":
            await self.act(airlock.set_group, rid, arg("group", ""), arg("context", ""), arg("controls", ""))
        elif step == "replace":
            await self.act(airlock.replace_file, rid, self.ident(arg("file", "")))
        elif step == "remove":
            await self.act(airlock.remove_file, rid, self.ident(arg("file", "")))
        elif step == "comments":
            await self.act(airlock.comment, rid, arg("text", ""),
                           visible_to_researcher=arg("visible_to_researcher", "") in ("on", "true"))
        elif step == "submit":
            await self.act(airlock.submit, rid)
        elif step == "withdraw":
            await self.act(airlock.withdraw, rid)
        elif step == "reviews":
            decisions = self.numbered_fields("decision-")
            comments = [(None, arg("comment", ""), arg("visible_to_researcher", "") == "on")]
            seen = self.numbered_fields("seen-")
            overrides = {i: text for i, text in self.numbered_fields("override-").items() if text.strip()}
            await self.act(airlock.review, rid, decisions, comments, seen, overrides)
        elif step == "return":
            await self.act(airlock.return_, rid, arg("comment", ""))
        elif step == "reject":
            await self.act(airlock.reject, rid, arg("comment", ""))
        elif step == "release":
            await self.act(airlock.release, rid)


PANEL_STATES = ("draft", "returned", "submitted", "partially_reviewed", "reviewed", "approved")


class PanelPage(Page):
    """JupyterLab's export panel: the tre-airlock extension shows this page in a frame of the
    workspace's sidebar, for that workspace's project. The person's open requests of the project
    with each file's automatic checks, and the form that adds a file chosen in JupyterLab's file
    browser ("Add to export request…") to a draft or returned request, or to a new one. Plain forms
    and no script, like every page here; only this page may be framed, and only by this origin."""

    page_name = "panel"
    headers = {**Base.headers, "Content-Security-Policy": Base.headers["Content-Security-Policy"].replace(
        "frame-ancestors 'none'", "frame-ancestors 'self'")}

    async def get(self) -> None:
        adds = [path for path in self.get_query_arguments("add") if path.strip()]
        await self.show_panel(self.get_query_argument("project", ""), typed={"paths": adds} if adds else {})

    async def post(self) -> None:
        """Add the chosen files, in order, to one request; a new request is created first when
        none is chosen. Refused: the panel again, the message beside its field, everything typed
        kept, the files added before the refused one said added, the refused one and those after
        it still in the form (and a request created on the way chosen, so that sending again
        neither creates another nor adds a file twice)."""
        arg, airlock = self.get_body_argument, self.site.airlock
        project = arg("project", "")
        typed: dict[str, Any] = {name: values[0].decode(errors="replace")
                                 for name, values in self.request.body_arguments.items() if name not in ("_xsrf", "path")}
        paths = [path for path in self.get_body_arguments("path") if path.strip()] or [""]
        chosen, field = arg("request", ""), "title"
        added: list[int] = []
        try:
            if chosen:
                field = "request"
                rid = self.ident(chosen)
            else:
                rid = await self.act(airlock.create, project, arg("title", ""))
                typed["request"] = str(rid)
            field = "path"
            for path in paths:
                added.append(await self.act(airlock.add_file, rid, path, arg("group", ""), arg("kind", ""),
                                            arg("context", "") or None, arg("controls", "") or None))
        except HTTPError as refused:
            if refused.status_code not in (400, 403, 409):
                raise
            if refused.status_code == 403:
                field = "form"  # not this person's to do: said above the button
            elif refused.status_code == 409 and chosen:
                field = "request"  # the request was submitted (or withdrawn) meanwhile: choose another
            typed["paths"] = paths[len(added):]
            await self.show_panel(project, refused.status_code, typed=typed, added=added,
                                  problems={getattr(refused, "field", None) or field: refused.log_message % refused.args})
            return
        self.see_other("panel", project=project, added=",".join(map(str, added)))

    async def show_panel(self, project: str, status: int = 200, problems: dict[str, str] | None = None,
                         typed: dict[str, Any] | None = None, added: list[int] | None = None) -> None:
        """The panel; ``added``: the files just added (by default those the query names), each
        said with its request and its checks' outcome."""
        views = await self.act(self.site.airlock.list_requests)
        mine = [v for v in views if v.author == self.username and v.project == project and v.state in PANEL_STATES]
        if added is None:
            added = [int(i) for i in self.get_query_argument("added", "").split(",")
                     if i.strip().isascii() and i.strip().isdigit()]
        just_added = [(f, v) for i in added for v in mine for f in v.files if f.id == i]
        self.show("panel.html", status, project=project, requests=mine,
                  editable=[v for v in mine if v.may_edit], just_added=just_added,
                  problems=problems or {}, typed=typed or {})


class QueuePage(Page):
    page_name = "queue"

    async def get(self) -> None:
        self.show("queue.html", queue=await self.act(self.site.airlock.queue))


class ReviewPage(Page):
    """A checker's page for one request: each file shown, its checks, and the review form."""

    page_name = "queue"

    async def get(self, request_id: str) -> None:
        await self.show_review(self.ident(request_id))


def excerpt_of(path: Path, name: str, results: list[dict[str, Any]]) -> list[tuple[int, list[str]]]:
    """The rows of a checked table a researcher needs to see their flagged cells in context: the
    first row (the header) and each row holding a flagged cell, as (row number, cells)."""
    if not path.exists():
        return []
    rows, _ = render.table_rows(path, name)
    wanted = sorted({0} | {r for r, _ in flagged_cells(results)})[:EXCERPT_ROWS]
    return [(r, rows[r]) for r in wanted if r < len(rows)]


def flagged_cells(results: list[dict[str, Any]]) -> dict[tuple[int, int], list[str]]:
    """The cells each failing or to-review rule names, for highlighting: (row, column) to rule ids."""
    cells: dict[tuple[int, int], list[str]] = {}
    for found in results:
        if found.get("status") == "pass":
            continue
        for cell in (found.get("details") or {}).get("cells", []):
            cells.setdefault((int(cell["row"]), int(cell["col"])), []).append(found["rule"])
    return cells


class FileContent(Page):
    """A frozen file for reviewing: ``download`` (CSV neutralised), ``image`` inline, ``view`` sandboxed."""

    async def get(self, request_id: str, file_id: str, how: str) -> None:
        name, path = await self.act(self.site.airlock.frozen_file, self.ident(request_id), self.ident(file_id))
        ext = render.suffix(name)
        if how == "image" and ext in render.IMAGES:
            self.send_file(path, name, inline=True, content_type=render.IMAGES[ext])
        elif how == "view":
            if render.view_kind(name) != "notebook":
                raise HTTPError(404, "%s", self.text("Only notebooks are rendered; download the file instead."))
            html = await self.site.run(render.notebook_html, path)
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.set_header("Content-Security-Policy", render.SANDBOX_CSP)
            self.finish(html)
        elif how == "download":
            data = await self.site.run(path.read_bytes)
            if ext in render.TABLES:
                data = render.neutralise_csv(data, render.TABLES[ext])
            self.send_file(path, name, data=data,
                           content_type="text/csv; charset=utf-8" if ext in render.TABLES else None)
        else:
            raise HTTPError(404)


class ReleasedFile(Page):
    async def get(self, request_id: str, filename: str) -> None:
        path = await self.act(self.site.airlock.released_file, self.ident(request_id), filename)
        self.send_file(path, filename, content_type=mimetypes.guess_type(filename)[0])


class ReleasedZip(Page):
    async def get(self, request_id: str) -> None:
        entries = await self.act(self.site.airlock.released_zip, self.ident(request_id))
        self.send_headers(f"request-{self.ident(request_id)}.zip", content_type="application/zip")

        async def send(chunk: bytes) -> None:
            self.write(chunk)
            await self.flush()

        await stream_zip(entries, send)
        self.finish()


class NotFoundPage(Page):
    async def get(self, *args: Any) -> None:
        raise HTTPError(404, "%s", self.text("There is no such page. The links at the top lead to your requests."))

    post = get
