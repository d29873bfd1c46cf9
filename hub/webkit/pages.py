"""The base of every page of the TRE's web services: headers, language, templates, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from babel.numbers import format_decimal
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from jupyterhub.services.auth import HubOAuthenticated
from markupsafe import Markup
from tornado.web import HTTPError, RequestHandler

from hub.webkit.forms import Problem
from tre_core.i18n import negotiate, translate

KIT_TEMPLATES = Path(__file__).resolve().parent / "templates"
XSRF_REFUSED = ("This form has expired or did not come from these pages. Go back, reload the page and send the "
                "form again.")


def security_headers(*, frames: bool = False, vary: str = "Accept-Language, Cookie") -> dict[str, str]:
    """Headers of every page: only the hub's style sheet, images and fonts from this origin (and
    the style sheet's inline icons), frames only when the service shows sandboxed file views, no
    script at all; no shared cache keeps a page (pages show who may see what)."""
    policy = ("default-src 'none'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
              + ("frame-src 'self'; " if frames else "")
              + "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    return {"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin", "Cache-Control": "no-store", "Vary": vary}


class KitSite:
    """A service's URLs and templates (its own folder first, then the kit's ``webkit/...``)."""

    def __init__(self, templates: Path, *, prefix: str, hub_prefix: str) -> None:
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self.hub_prefix = hub_prefix if hub_prefix.endswith("/") else hub_prefix + "/"
        self.templates = Environment(loader=FileSystemLoader([templates, KIT_TEMPLATES]),
                                     autoescape=select_autoescape(["html"]), undefined=StrictUndefined,
                                     trim_blocks=True, lstrip_blocks=True)

    def page_values(self, language: str) -> dict[str, Any]:
        """What a service adds to every page besides the kit's helpers (its vocabulary, say)."""
        return {}

    def render(self, template: str, language: str, **values: Any) -> str:
        def text(message: str, **params: Any) -> str:
            return translate(language, message, **params)

        def problem(found: Problem) -> str:
            return translate(language, found.message, **found.params)

        def number(value: int) -> str:
            return format_decimal(value, locale=language)

        return self.templates.get_template(template).render(
            _=text, problem=problem, number=number, lang=language, prefix=self.prefix, hub_prefix=self.hub_prefix,
            **self.page_values(language), **values)


class KitPage(HubOAuthenticated, RequestHandler):
    """A page of a service: who reads it (from the hub), in which language, rendered how."""

    page_name = ""
    headers = security_headers()

    def initialize(self, site: KitSite) -> None:
        self.site = site

    def set_default_headers(self) -> None:
        # Also called again before an error page is written, which then keeps these headers.
        self.language = negotiate(self.request.headers.get("Accept-Language"))
        self.set_header("Content-Language", self.language)
        for name, value in self.headers.items():
            self.set_header(name, value)

    def check_xsrf_cookie(self) -> None:
        try:
            super().check_xsrf_cookie()
        except HTTPError:
            raise HTTPError(403, "%s", translate(self.language, XSRF_REFUSED)) from None

    def page_values(self) -> dict[str, Any]:
        """What every page of this service shows about its reader (the kit: who is signed in)."""
        return {"user": self.current_user}

    def show(self, template: str, status: int = 200, **values: Any) -> None:
        self.set_status(status)
        self.finish(self.site.render(template, self.language, page=self.page_name,
                                     xsrf_form_html=lambda: Markup(self.xsrf_form_html()),
                                     **{**self.page_values(), **values}))

    def see_other(self, path: str, **query: str) -> None:
        """After a form is accepted, go to a page (POST, redirect, GET: a reload does not post again)."""
        self.redirect(self.site.prefix + path + ("?" + urlencode(query) if query else ""), status=303)

    def error_message(self, status_code: int, exc: BaseException | None) -> str | None:
        """The words of an HTTPError below 500; None lets error.html say it in general terms."""
        if isinstance(exc, HTTPError) and status_code < 500 and exc.log_message:
            return exc.log_message % exc.args if exc.args else exc.log_message
        return None

    def error_page_values(self) -> dict[str, Any]:
        # Never ask the hub again here: the error may be that it did not answer.
        return {"user": getattr(self, "_current_user", None)}

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        self.finish(self.site.render(
            "error.html", self.language, page="", status_code=status_code, reason=self._reason,
            message=self.error_message(status_code, exc), **self.error_page_values()))
