"""The hub's pages say which language they are written in.

JupyterHub's ``page.html``, which every hub page extends, writes ``<html lang="en">`` whatever
the language of the text; a French page marked English is read aloud with English phonetics by
screen readers and offered for "translation from English" by browsers. JupyterHub has no block
around that tag, so this Jinja extension rewrites it as the template is loaded, to the language
the page is shown in (the browser's, as negotiated for our own texts). Loaded through
``JupyterHub.jinja_environment_options``; nothing of JupyterHub is copied or patched.
"""

from __future__ import annotations

from jinja2 import Environment
from jinja2.ext import Extension

from tre_core.i18n import negotiate

HUB_HTML_TAG = '<html lang="en">'
PAGE_TEMPLATES = frozenset({"page.html", "templates/page.html"})


def browser_language(static_url) -> str:
    """The language of the page being rendered (``en`` or ``fr``). Templates receive no request,
    but ``static_url`` is a method of the page's handler, so its request headers are reachable
    through it; without one (a page rendered outside a request) the answer is English."""
    handler = getattr(static_url, "__self__", None)
    request = getattr(handler, "request", None)
    return negotiate(request.headers.get("Accept-Language") if request else None)


class PageLanguage(Extension):
    """Makes ``<html lang>`` of the hub's base page follow the language of the page."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.globals["tre_page_language"] = browser_language

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        if name not in PAGE_TEMPLATES:
            return source
        return source.replace(HUB_HTML_TAG, '<html lang="{{ tre_page_language(static_url) }}">', 1)
