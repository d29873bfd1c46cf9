"""Jupyter Server pieces of a TRE workspace: files leave only through the egress review and enter
only through the catalogue.

- ``DownloadsOffHandler`` answers 403 on ``/files/`` (raw downloads, "open in a new browser tab")
  and, as this module's server extension, on ``/nbconvert/`` (a notebook exported as a download).
- ``NoUploadContentsManager`` refuses what only an upload sends (base64 or chunked saves); notebooks
  and text files save as usual, and copies inside the workspace still work.
- ``ReadGuardContentsManager`` (``tre_file_reads``) hands the browser a file's content only for
  what JupyterLab renders, under the installation's size limit, each read recorded by the hub.

Whatever the browser shows can still be copied by hand: the README's security section says what
these locks stop (one-request copies of whole files) and what they do not.
"""

from __future__ import annotations

import json
import os
from contextvars import ContextVar

import tre_lab_language
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from jupyter_server.utils import url_path_join
from tornado import web

MESSAGES = {
    "en": {
        "downloads_off": (
            "Downloads are turned off in this secure workspace: files leave only through the egress "
            "review. Put your results in /project/outputs and submit an export request from the "
            "hub's export pages."
        ),
        "uploads_off": (
            "Uploads are turned off in this secure workspace: data enter only through the catalogue. "
            "Ask your project's data steward to add the files you need."
        ),
    },
    "fr": {
        "downloads_off": (
            "Les téléchargements sont désactivés dans cet espace sécurisé : les fichiers n'en sortent "
            "que par la revue des exports. Placez vos résultats dans /project/outputs et soumettez une "
            "demande d'export depuis les pages d'export du hub."
        ),
        "uploads_off": (
            "Le dépôt de fichiers est désactivé dans cet espace sécurisé : les données n'entrent que "
            "par le catalogue. Demandez au gestionnaire de données de votre projet d'ajouter les "
            "fichiers dont vous avez besoin."
        ),
    },
}

# Set while the workspace copies one of its own files: a copy re-saves a binary file as base64,
# which is not an upload.
_copying_inside = ContextVar("tre_copying_inside", default=False)


def message(key: str) -> str:
    """The message in the workspace's language (the spawner sets TRE_UI_LANGUAGE from the browser)."""
    language = os.environ.get("TRE_UI_LANGUAGE", "en")[:2].lower()
    return MESSAGES.get(language, MESSAGES["en"])[key]


def refused(key: str) -> web.HTTPError:
    # the message goes through % formatting in tornado's and jupyter_server's error pages
    return web.HTTPError(403, message(key).replace("%", "%%"))


class DownloadsOffHandler(JupyterHandler):
    """Every raw-file or export request: 403, saying how results leave the workspace."""

    def initialize(self, **kwargs: object) -> None:
        pass  # files_handler_params (a path to serve) mean nothing here

    @web.authenticated
    def get(self, *args: str, **kwargs: object) -> None:
        self.log.info("refused a download: %s %s", self.request.method, self.request.path)
        raise refused("downloads_off")

    head = post = get


class NoUploadContentsManager(AsyncLargeFileManager):
    """The default contents manager, without uploads."""

    async def save(self, model: dict, path: str = "") -> dict:
        if not _copying_inside.get() and (model.get("chunk") is not None or model.get("format") == "base64"):
            self.log.info("refused an upload to %s", path)
            raise refused("uploads_off")
        return await super().save(model, path)

    async def copy(self, from_path: str, to_path: str | None = None) -> dict:
        token = _copying_inside.set(True)
        try:
            return await super().copy(from_path, to_path)
        finally:
            _copying_inside.reset(token)


class LabLanguage(web.OutputTransform):
    """JupyterLab in the language of the browser at each visit, not the one of the start: before a
    JupyterLab page is served (``…/lab``, ``…/lab/tree/…``, which then reads its settings), the
    language setting follows the request's Accept-Language. Like ``tre_file_reads.RequestLanguage``,
    a transform only to be built before the handler runs, for every request."""

    def __init__(self, request) -> None:
        super().__init__(request)
        base_url = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
        relative = request.path[len(base_url):] if request.path.startswith(base_url) else ""
        page = relative == "lab" or (relative.startswith("lab/") and relative.split("/")[1] in ("tree", "workspaces"))
        if request.method == "GET" and page:
            try:
                tre_lab_language.follow_browser_language(request.headers.get("Accept-Language"))
            except OSError:
                pass  # a full or read-only home: JupyterLab keeps the language it has


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "tre_workspace"}]


def _load_jupyter_server_extension(serverapp) -> None:
    """Put ``/nbconvert/...`` (notebook exports as downloads) behind the same 403. Handlers added by
    extensions are matched before the server's own, so this one wins. Every response passes the
    read limit's cap, and refusals speak the request's language (``tre_file_reads``). Once every
    extension has added its routes, the server logs them all (the tests compare that list with
    the routes they know to serve no file bytes, or to be guarded)."""
    from tornado.ioloop import IOLoop

    from tre_file_reads import RequestLanguage, ResponseCap

    web_app = serverapp.web_app
    base_url = web_app.settings["base_url"]
    web_app.add_handlers(".*$", [(url_path_join(base_url, r"/nbconvert/.*"), DownloadsOffHandler)])
    web_app.add_transform(RequestLanguage)
    web_app.add_transform(LabLanguage)
    web_app.add_transform(ResponseCap)
    IOLoop.current().add_callback(lambda: serverapp.log.info("tre_workspace routes: %s", json.dumps(routes(web_app))))


def routes(web_app) -> list[list[str]]:
    """[pattern, handler class] of every route of the running server, in matching order."""
    found = []
    for host_rule in web_app.default_router.rules:
        for rule in getattr(host_rule.target, "rules", []):
            pattern = getattr(rule.matcher, "regex", None)
            target = rule.target
            found.append([pattern.pattern if pattern else repr(rule.matcher),
                          f"{getattr(target, '__module__', '')}.{getattr(target, '__name__', repr(target))}"])
    return found
