"""The JSON API at ``/services/egress/api/``: token or cookie, JSON in, JSON out, errors as
``{"error": "what to do"}``. Each handler calls the same act of ``logic.Airlock`` as the pages."""

from __future__ import annotations

import json
from typing import Any

from tornado.web import HTTPError, RequestHandler

from egress_review.site import OPENAPI, Base

class Api(Base):
    """The JSON API: token or cookie, JSON in, JSON out, errors as ``{"error": "what to do"}``."""

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Content-Type", "application/json; charset=utf-8")

    async def prepare(self) -> None:
        await super().prepare()
        if self.current_user is None:
            raise HTTPError(403, "%s", self.text(
                "Sign in first: send a JupyterHub API token in the header “Authorization: token …”, "
                "or use the pages at {prefix}.", prefix=self.site.prefix))

    def body(self) -> dict[str, Any]:
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            raise HTTPError(400, "%s", "The body is not JSON; send a JSON object.") from None
        if not isinstance(data, dict):
            raise HTTPError(400, "%s", "The body must be a JSON object.")
        return data

    def field(self, data: dict[str, Any], name: str, kind: type = str, default: Any = ...) -> Any:
        value = data.get(name, default)
        if value is ...:
            raise HTTPError(400, "%s", f"The field “{name}” is missing; see {self.site.prefix}api/openapi.json.")
        if value is not None and not isinstance(value, kind):
            raise HTTPError(400, "%s", f"The field “{name}” must be a {kind.__name__}.")
        return value

    def reply(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(value, default=str))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        message = self.error_message(status_code, kwargs.get("exc_info", (None, None, None))[1]) or (
            "There is no such endpoint; see the OpenAPI document." if status_code == 404 else
            "Something went wrong on our side; try again, and tell the administrators if it goes on.")
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps({"error": message}))


class ApiRequests(Api):
    async def get(self) -> None:
        views = await self.act(self.site.airlock.list_requests)
        self.reply({"requests": [v.as_json() for v in views]})

    async def post(self) -> None:
        data = self.body()
        request_id = await self.act(self.site.airlock.create, self.field(data, "project"),
                                    self.field(data, "title"))
        self.reply((await self.act(self.site.airlock.get, request_id)).as_json(), 201)


class ApiRequest(Api):
    async def get(self, request_id: str) -> None:
        self.reply((await self.act(self.site.airlock.get, self.ident(request_id))).as_json())


class ApiFiles(Api):
    async def post(self, request_id: str) -> None:
        data = self.body()
        file_id = await self.act(
            self.site.airlock.add_file, self.ident(request_id), self.field(data, "path"), self.field(data, "group"),
            self.field(data, "kind"), self.field(data, "context", default=None),
            self.field(data, "controls", default=None))
        view = await self.act(self.site.airlock.get, self.ident(request_id))
        self.reply({"file": file_id, "request": view.as_json()}, 201)


class ApiSubmit(Api):
    async def post(self, request_id: str) -> None:
        await self.act(self.site.airlock.submit, self.ident(request_id))
        self.reply((await self.act(self.site.airlock.get, self.ident(request_id))).as_json())


class ApiReviews(Api):
    async def post(self, request_id: str) -> None:
        data = self.body()
        decisions = self.field(data, "decisions", dict)
        try:
            parsed = {int(k): str(v) for k, v in decisions.items()}
        except ValueError:
            raise HTTPError(400, "%s", "“decisions” maps file ids to approve, reject or changes_requested.") from None
        comments = []
        for entry in self.field(data, "comments", list, default=[]):
            if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
                raise HTTPError(400, "%s", "Each comment is an object with “text”, and optionally “file” "
                                           "and “visible_to_researcher”.")
            comments.append((entry.get("file"), entry["text"], bool(entry.get("visible_to_researcher", False))))
        seen = self.field(data, "sha256", dict, default={})
        try:
            seen_parsed = {int(k): str(v) for k, v in seen.items()}
        except ValueError:
            raise HTTPError(400, "%s", "“sha256” maps file ids to the sha256 you reviewed.") from None
        overrides = self.field(data, "overrides", dict, default={})
        try:
            overrides_parsed = {int(k): str(v) for k, v in overrides.items()}
        except ValueError:
            raise HTTPError(400, "%s", "“overrides” maps file ids to why you override their Fail.") from None
        await self.act(self.site.airlock.review, self.ident(request_id), parsed, comments, seen_parsed,
                       overrides_parsed)
        self.reply((await self.act(self.site.airlock.get, self.ident(request_id))).as_json())


class ApiDecision(Api):
    """return, reject, release (checkers) and withdraw (the author): one handler per path."""

    step = ""

    async def post(self, request_id: str) -> None:
        data = self.body()
        airlock, rid = self.site.airlock, self.ident(request_id)
        if self.step == "withdraw":
            await self.act(airlock.withdraw, rid)
        elif self.step == "release":
            await self.act(airlock.release, rid)
        else:
            act = airlock.return_ if self.step == "return" else airlock.reject
            await self.act(act, rid, self.field(data, "comment", default=""))
        self.reply((await self.act(airlock.get, rid)).as_json())


class ApiComments(Api):
    async def post(self, request_id: str) -> None:
        data = self.body()
        await self.act(self.site.airlock.comment, self.ident(request_id), self.field(data, "text"),
                       visible_to_researcher=bool(self.field(data, "visible_to_researcher", bool, default=True)),
                       file_id=self.field(data, "file", int, default=None))
        self.reply((await self.act(self.site.airlock.get, self.ident(request_id))).as_json(), 201)


class ApiReleased(Api):
    async def get(self, request_id: str, filename: str) -> None:
        path = await self.act(self.site.airlock.released_file, self.ident(request_id), filename)
        self.send_file(path, filename)


class ApiOpenApi(RequestHandler):
    """The API's description, readable without signing in (it holds no data)."""

    def get(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(OPENAPI.read_bytes())


def _decision_handler(step: str) -> type[ApiDecision]:
    return type(f"Api{step.title()}", (ApiDecision,), {"step": step})


class NotFoundApi(Api):
    async def get(self, *args: Any) -> None:
        raise HTTPError(404, "%s", "There is no such endpoint; see the OpenAPI document at api/openapi.json.")

    post = get
