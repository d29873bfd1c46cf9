"""File content in the browser, narrowed to what JupyterLab renders and recorded by the hub.

``ReadGuardContentsManager.get`` is the one place where the contents API hands a file's bytes to
the browser. It reads at most the installation's limit plus one byte (so a 10 GB file is never
loaded), decides the file's kind from those bytes and its name (``tre_read_policy``), hashes them,
and asks the hub (``POST /hub/api/tre/file-reads`` with the server's own token, which names the
person and the project) to record the read against the person's daily volume. The content is built
from the very bytes that were checked, hashed and recorded, so a file swapped in between cannot slip
through. A refusal (kind, size, the day's volume) is recorded too; a hub that cannot be reached or
does not say yes means no content (fail closed).

``ResponseCap`` is the catch-all for the server's other routes: no response but the image's own
static assets may carry more than the same limit, whatever handler produced it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
from contextvars import ContextVar

import nbformat
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from tre_read_policy import SNIFF_BYTES, FileKind, classify, image_mimetype, negotiate, read_max_bytes
from tre_workspace import NoUploadContentsManager, _copying_inside

HASH_REFUSED_UP_TO = 2 * 1024**3  # a refused file larger than this is recorded without its sha256

MESSAGES = {
    "en": {
        "kind": ("{path} is not a notebook, a text file or an image, so its content is not shown in the "
                 "browser of this secure workspace. Work on it in a notebook; results leave only through "
                 "the egress review (put them in /project/outputs and submit an export request)."),
        "size": ("{path} is {size} bytes, over this workspace's limit of {limit} bytes for a file shown in "
                 "the browser. Work on it in a notebook; results leave only through the egress review."),
        "volume": ("You have reached today's volume of file content shown in the browser ({limit} bytes); "
                   "the data stewards have been told. Files leave only through the egress review; "
                   "ask a data steward if you need more today."),
        "hub": ("This file cannot be shown now: the hub, which records every file read in the browser, "
                "did not answer. Try again in a minute; tell the platform's administrators if it lasts."),
    },
    "fr": {
        "kind": ("{path} n'est ni un notebook, ni un fichier texte, ni une image : son contenu n'est pas "
                 "affiché dans le navigateur de cet espace sécurisé. Travaillez dessus dans un notebook ; "
                 "les résultats ne sortent que par la revue des exports (placez-les dans /project/outputs "
                 "et soumettez une demande d'export)."),
        "size": ("{path} fait {size} octets, au-delà de la limite de {limit} octets de cet espace pour un "
                 "fichier affiché dans le navigateur. Travaillez dessus dans un notebook ; les résultats ne "
                 "sortent que par la revue des exports."),
        "volume": ("Vous avez atteint le volume du jour de contenu de fichiers affiché dans le navigateur "
                   "({limit} octets) ; les gestionnaires de données en ont été avertis. Les fichiers ne "
                   "sortent que par la revue des exports ; demandez à un gestionnaire de données si vous "
                   "avez besoin de plus aujourd'hui."),
        "hub": ("Ce fichier ne peut pas être affiché maintenant : le hub, qui enregistre chaque lecture de "
                "fichier dans le navigateur, n'a pas répondu. Réessayez dans une minute ; prévenez les "
                "administrateurs de la plateforme si cela dure."),
    },
}
STATUS = {"kind": 403, "size": 413, "volume": 403, "hub": 503}

# The language of the request being served (set by RequestLanguage, a per-request transform).
_request_language: ContextVar[str] = ContextVar("tre_request_language", default="")


def refusal_text(key: str, **params: object) -> str:
    """The refusal in the request's language (its Accept-Language; else the workspace's)."""
    language = _request_language.get() or os.environ.get("TRE_UI_LANGUAGE", "en")[:2].lower()
    return MESSAGES.get(language, MESSAGES["en"])[key].format(**params)


def refusal(key: str, **params: object) -> web.HTTPError:
    # the API's JSON shows the message as is, the HTML error pages %-format it
    error = web.HTTPError(STATUS[key], refusal_text(key, **params).replace("%", "%%"))
    error.reason = {"kind": "not shown in the browser", "size": "over the size limit",
                    "volume": "daily volume reached", "hub": "read not recorded"}[key]
    return error


def _read_head_and_size(os_path: str, limit: int) -> tuple[bytes, int]:
    """At most ``limit + 1`` bytes (one more tells "over the limit"), and the file's size."""
    with open(os_path, "rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        return stream.read(limit + 1), size


def _sha256_of_file(os_path: str, size: int) -> str | None:
    if size > HASH_REFUSED_UP_TO:
        return None
    digest = hashlib.sha256()
    with open(os_path, "rb") as stream:
        for block in iter(lambda: stream.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


async def ask_hub(path: str, size: int, sha256: str | None, outcome: str, kind: str) -> dict:
    """The hub's answer for one read (``{"allowed": bool, ...}``); raises when it cannot be had."""
    api_url = os.environ["JUPYTERHUB_API_URL"].rstrip("/")
    request = HTTPRequest(
        f"{api_url}/tre/file-reads", method="POST", request_timeout=15, connect_timeout=5,
        headers={"Authorization": f"token {os.environ['JUPYTERHUB_API_TOKEN']}",
                 "Content-Type": "application/json"},
        body=json.dumps({"path": path, "size": size, "sha256": sha256, "outcome": outcome, "kind": kind}))
    reply = await AsyncHTTPClient().fetch(request)
    return json.loads(reply.body)


class ReadGuardContentsManager(NoUploadContentsManager):
    """Saves as ``NoUploadContentsManager``; reads of a file's content guarded as the module says."""

    async def get(self, path, content=True, type=None, format=None, require_hash=False):
        os_path = self._get_os_path(path.strip("/"))
        if not content or _copying_inside.get() or not os.path.isfile(os_path) or type == "directory":
            return await super().get(path, content=content, type=type, format=format, require_hash=require_hash)
        path = path.strip("/")
        model = self._base_model(path)  # 404 for hidden files, as the default manager
        limit = read_max_bytes()
        data, size = await asyncio.to_thread(_read_head_and_size, os_path, limit)
        kind = classify(path, data[:SNIFF_BYTES])
        if type == "notebook" and kind is FileKind.TEXT:
            kind = FileKind.NOTEBOOK  # JupyterLab opens any JSON file as a notebook when asked to
        wrong_format = kind is not FileKind.IMAGE and format == "base64"
        if kind is FileKind.DATA or wrong_format or len(data) > limit:
            reason = "size" if kind is not FileKind.DATA and not wrong_format else "kind"
            await self._record_refusal(path, os_path, size, reason, kind)
            raise refusal(reason, path=path, size=size, limit=limit)
        sha256 = hashlib.sha256(data).hexdigest()
        await self._ask_hub_or_refuse(path, len(data), sha256, kind)
        model.update(self._content(path, data, kind, type))
        if require_hash:
            model.update(**self._get_hash(data))
        return model

    def _content(self, path: str, data: bytes, kind: FileKind, requested_type: str | None) -> dict:
        if kind is FileKind.IMAGE:
            return {"type": "file", "format": "base64", "mimetype": image_mimetype(path),
                    "content": base64.encodebytes(data).decode("ascii")}
        text = data.decode("utf-8", errors="strict") if _is_utf8(data) else None
        if text is None:
            raise web.HTTPError(400, f"{path} is not UTF-8 encoded".replace("%", "%%"), reason="bad format")
        if kind is FileKind.NOTEBOOK and requested_type in (None, "notebook"):
            validation_error: dict = {}
            try:
                notebook = nbformat.reads(text, as_version=4, capture_validation_error=validation_error)
            except Exception as error:
                raise web.HTTPError(400, f"Unreadable notebook {path}: {error}".replace("%", "%%")) from error
            self.mark_trusted_cells(notebook, path)
            model = {"type": "notebook", "format": "json", "content": notebook, "mimetype": None}
            self.validate_notebook_model(model, validation_error)
            return model
        if requested_type == "notebook":
            raise web.HTTPError(400, f"{path} is not a notebook".replace("%", "%%"), reason="bad type")
        return {"type": "file", "format": "text", "mimetype": _text_mimetype(path), "content": text}

    async def _record_refusal(self, path: str, os_path: str, size: int, reason: str, kind: FileKind) -> None:
        sha256 = await asyncio.to_thread(_sha256_of_file, os_path, size)
        try:
            await ask_hub(path, size, sha256, f"refused-{reason}", kind.value)
        except Exception as error:  # the refusal stands; only its record is missing
            self.log.error("tre: could not record the refused read of %s with the hub: %s", path, error)
        self.log.info("tre: refused the content of %s (%s, %s, %d bytes)", path, reason, kind.value, size)

    async def _ask_hub_or_refuse(self, path: str, size: int, sha256: str, kind: FileKind) -> None:
        try:
            answer = await ask_hub(path, size, sha256, "read", kind.value)
        except (HTTPClientError, OSError, KeyError, ValueError) as error:
            self.log.error("tre: refused the content of %s: the hub did not record the read: %s", path, error)
            raise refusal("hub") from None
        if answer.get("allowed") is not True:
            self.log.info("tre: refused the content of %s: the day's volume is reached", path)
            raise refusal("volume", limit=answer.get("daily_limit", "?"))


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _text_mimetype(path: str) -> str:
    import mimetypes

    guessed = mimetypes.guess_type(path)[0]
    return guessed if guessed and (guessed.startswith("text/") or guessed.endswith(("json", "xml", "svg+xml"))) \
        else "text/plain"


class RequestLanguage(web.OutputTransform):
    """Not a transform at all: tornado builds one per request before the handler runs, which is the
    server's one hook that sees every request; it notes the browser's language for refusals."""

    def __init__(self, request) -> None:
        super().__init__(request)
        _request_language.set(negotiate(request.headers.get("Accept-Language")))


class ResponseCap(web.OutputTransform):
    """No response carries more than about twice the read limit (a file at the limit, in JSON),
    except the image's own static assets (which the researcher cannot write: the root file system
    is read-only). A response whose first chunk is already over it becomes a 413; a streamed one is
    cut there."""

    STATIC_PREFIXES = ("static/", "lab/static/", "lab/extensions/", "lab/api/translations", "lab/api/themes/")

    def __init__(self, request) -> None:
        super().__init__(request)
        base_url = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
        relative = request.path[len(base_url):] if request.path.startswith(base_url) else request.path
        self.exempt = relative.startswith(self.STATIC_PREFIXES)
        self.limit = read_max_bytes()
        # room for a file at the limit in JSON: base64 grows it by a third, escapes up to double it
        self.left = 2 * self.limit + 64 * 1024
        self.path = request.path

    def transform_first_chunk(self, status_code, headers, chunk, finishing):
        if self.exempt:
            return status_code, headers, chunk
        if len(chunk) > self.left and finishing:
            body = json.dumps({"message": refusal_text("size", path=self.path, size=len(chunk), limit=self.limit),
                               "reason": "over the size limit"})
            headers["Content-Type"] = "application/json"
            headers["Content-Length"] = str(len(body))
            return 413, headers, body.encode()
        return status_code, headers, self.transform_chunk(chunk, finishing)

    def transform_chunk(self, chunk, finishing):
        if self.exempt:
            return chunk
        kept = chunk[: max(self.left, 0)]
        self.left -= len(chunk)
        return kept
