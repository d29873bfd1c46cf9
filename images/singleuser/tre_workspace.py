"""Jupyter Server pieces of the TRE workspace: nothing leaves or enters except through the review.

The ``/files/`` handler (raw downloads) answers 403, and uploads (base64 or chunked saves) are
refused; notebooks and text files save as usual. This is a speed bump, not a wall: what a browser
shows can be copied by hand. Results leave through the egress review.
"""

from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.services.contents.largefilemanager import LargeFileManager
from tornado import web

DOWNLOADS_OFF = (
    "Downloads are turned off in this secure workspace. To take results out, put them in "
    "/project/outputs and submit them to the output review."
)
UPLOADS_OFF = (
    "Uploads are turned off in this secure workspace. Ask your project's data steward to bring "
    "files in through the catalogue."
)


class DownloadsOffHandler(JupyterHandler):
    def initialize(self, *args, **kwargs):
        pass

    @web.authenticated
    def get(self, path=None, include_body=True):
        raise web.HTTPError(403, DOWNLOADS_OFF)

    head = get


class NoUploadContentsManager(LargeFileManager):
    def save(self, model, path=""):
        if model.get("chunk") is not None or (model.get("type") == "file" and model.get("format") == "base64"):
            raise web.HTTPError(403, UPLOADS_OFF)
        return super().save(model, path)
