"""The index as a hub-managed service: pypiserver behind a gate that knows projects and policies.

Workspaces reach it on their network's gateway, port ``TRE_PACKAGE_INDEX_PORT``, with their own
JupyterHub token as the password of the index URL (the spawner sets ``PIP_INDEX_URL``). The gate
asks the hub whose token it is: the token of server ``alice/cardio-risk`` speaks for project
cardio-risk, and the project's policy picks the pypiserver that may answer (allowlist folder only,
or allowlist and approved folders). Only ``GET``/``HEAD`` of ``/simple/...`` and ``/packages/FILE``
reach pypiserver; anything else, a ``CONNECT``, an absolute URL or an upload, is refused here, and
pypiserver's fallback to PyPI is off: the index is no way out.

``/api/requests`` takes and lists the project's own package requests (``tre packages request``).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor

import pypiserver
from jupyterhub.services.auth import HubAuth
from packaging.utils import InvalidSdistFilename, InvalidWheelFilename, canonicalize_name, parse_sdist_filename, parse_wheel_filename
from sqlalchemy.exc import SQLAlchemyError
from tornado import web
from tornado.wsgi import WSGIContainer

from tre_core.db import session_scope
from datasets.models import Membership
from package_index import workflow
from package_index.models import Policy
from package_index.policy import HOW_TO_ASK, POLICY_NONE, BadRequest, roots_served
from package_index.store import IndexStore

log = logging.getLogger("tre.packages")
SERVER_SCOPE = re.compile(r"^access:servers!server=([^/]+)/([a-z][a-z0-9-]{1,62}[a-z0-9])$")


def project_name(filename: str) -> str | None:
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[0])
        return str(parse_sdist_filename(filename)[0])
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None


class Index:
    """One pypiserver per policy that serves anything, over the store's folders."""

    def __init__(self, store: IndexStore, catalogue_url: str, hub_auth: HubAuth) -> None:
        store.ensure()
        self.store, self.catalogue_url, self.hub_auth = store, catalogue_url, hub_auth
        self.executor = ThreadPoolExecutor(8, thread_name_prefix="pypiserver")
        self.servers = {
            # in threads: a large wheel read and sent must not hold up the other workspaces' requests
            policy: WSGIContainer(pypiserver.app(
                roots=[store.folder(f) for f in roots_served(policy)], disable_fallback=True, hash_algo="sha256",
                authenticate=[], password_file=".", cache_control=None, log_stream=None), executor=self.executor)
            for policy in (Policy.PRE_APPROVED, Policy.ON_REQUEST)}

    def files(self, policy: Policy) -> set[str]:
        return {p.name for folder in roots_served(policy) for p in self.store.folder(folder).iterdir()
                if p.is_file() and not p.name.startswith(".")}


class Refused(web.HTTPError):
    """A refusal whose text (and HTTP reason phrase, which pip prints) says what to do."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(status, reason=text.replace("`", "'")[:400])
        self.text = text


class GateHandler(web.RequestHandler):
    index: Index

    def initialize(self, index: Index) -> None:
        self.index = index

    def write_error(self, status_code: int, **kwargs) -> None:
        error = kwargs.get("exc_info", (None, None))[1]
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        if status_code == 401:
            self.set_header("WWW-Authenticate", 'Basic realm="TRE packages"')
        self.finish((error.text if isinstance(error, Refused) else self._reason) + "\n")

    def _token(self) -> str | None:
        header = self.request.headers.get("Authorization", "")
        kind, _, value = header.partition(" ")
        if kind.lower() == "token":
            return value.strip() or None
        if kind.lower() == "basic":
            try:
                return base64.b64decode(value).decode().partition(":")[2] or None
            except ValueError:
                return None
        return None

    async def who(self) -> tuple[str, str]:
        """(user, project) of the workspace whose token this is."""
        token = self._token()
        if not token:
            raise Refused(401, "The package index answers workspaces only: use pip in a TRE workspace.")
        try:
            model = await self.index.hub_auth.user_for_token(token, sync=False)
        except Exception:  # the hub is restarting or down
            log.exception("the hub could not identify a token")
            raise Refused(503, "The hub cannot confirm who you are just now; try again in a minute.") from None
        if not model:
            raise Refused(403, "The hub does not know this token: restart your workspace.")
        servers = [m.groups() for m in map(SERVER_SCOPE.match, model.get("scopes", [])) if m]
        if len(servers) != 1 or servers[0][0] != model.get("name"):
            raise Refused(403, "Use the token of a project workspace (pip in a workspace does).")
        return model["name"], servers[0][1]

    async def policy_for(self) -> tuple[str, str, Policy]:
        user, project = await self.who()
        with session_scope(self.index.catalogue_url) as session:
            if session.get(Membership, (project, user)) is None:
                raise Refused(403, f"{user} is no longer a member of project {project}.")
            policy = workflow.policy_of(session, project)
        if policy is Policy.NONE:
            raise Refused(403, POLICY_NONE.format(project=project))
        return user, project, policy


class SimpleHandler(GateHandler):
    """``/simple/``, ``/simple/NAME/`` and ``/packages/FILE``, passed to pypiserver when served."""

    async def get(self, kind: str, rest: str) -> None:
        _, project, policy = await self.policy_for()
        files = self.index.files(policy)
        if kind == "simple" and rest:
            name = canonicalize_name(rest.rstrip("/"))
            if not any(project_name(f) == name for f in files):
                raise Refused(404, HOW_TO_ASK.format(name=name, project=project))
        elif kind == "packages" and rest not in files:
            raise Refused(404, HOW_TO_ASK.format(name=project_name(rest) or rest, project=project))
        self.index.servers[policy](self.request)
        self._finished = True
        self.on_finish()

    head = get


class RequestsHandler(GateHandler):
    """The project's own package requests (``tre packages request`` and ``status``)."""

    async def get(self) -> None:
        _, project, _ = await self.policy_for()
        with session_scope(self.index.catalogue_url) as session:
            rows = [{"id": r.id, "name": r.name, "specifier": r.specifier, "state": r.state.value,
                     "requested_by": r.requested_by, "outcome": r.outcome, "created_at": r.created_at.isoformat()}
                    for r in workflow.requests_of(session, project)]
        self.write({"project": project, "requests": rows})

    async def post(self) -> None:
        user, project, _ = await self.policy_for()
        try:
            body = json.loads(self.request.body or b"{}")
            with session_scope(self.index.catalogue_url) as session:
                request = workflow.ask(session, user, project, str(body.get("name", "")),
                                       str(body.get("version", "")), str(body.get("reason", "")))
                answer = {"id": request.id, "name": request.name, "specifier": request.specifier,
                          "state": request.state.value}
        except (BadRequest, ValueError) as error:
            raise Refused(400, str(error)) from None
        except SQLAlchemyError:
            log.exception("recording a package request")
            raise Refused(503, "The request could not be recorded; try again in a minute.") from None
        self.set_status(201)
        self.write(answer)


class NotHere(GateHandler):
    """Everything else: absolute URLs, other paths, other methods. Nothing is forwarded anywhere."""

    def prepare(self) -> None:
        raise Refused(404, "The TRE package index serves /simple/ and /packages/ only.")


def make_app(index: Index) -> web.Application:
    return web.Application([
        (r"/(simple)/((?:[A-Za-z0-9._-]+/?)?)", SimpleHandler, {"index": index}),
        (r"/(packages)/([A-Za-z0-9._+!-]+)", SimpleHandler, {"index": index}),
        (r"/api/requests", RequestsHandler, {"index": index}),
        (r".*", NotHere, {"index": index}),
    ], default_handler_class=NotHere, default_handler_args={"index": index})


def hub_auth() -> HubAuth:
    return HubAuth(api_token=os.environ["JUPYTERHUB_API_TOKEN"], cache_max_age=60)
