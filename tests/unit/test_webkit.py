"""The web kit every TRE service builds its pages on: the hub's look, the headers, the errors."""

from __future__ import annotations

import re

from bs4 import BeautifulSoup

from hub.catalogue_service.app import Site
from hub.webkit.pages import KIT_TEMPLATES, XSRF_REFUSED, security_headers
from tre_core.i18n import _messages


def test_every_text_of_the_kit_is_translated_into_french():
    texts = {XSRF_REFUSED}
    for template in (KIT_TEMPLATES / "webkit").glob("*.html"):
        texts |= set(re.findall(r'_\("([^"]+)"', template.read_text()))
    assert len(texts) >= 4 and sorted(texts - set(_messages("fr"))) == []


def test_no_script_and_frames_only_when_asked():
    plain, framed = security_headers(), security_headers(frames=True)
    assert "script-src" not in plain["Content-Security-Policy"] and "default-src 'none'" in plain["Content-Security-Policy"]
    assert "frame-src" not in plain["Content-Security-Policy"] and "frame-src 'self'" in framed["Content-Security-Policy"]
    assert plain["Cache-Control"] == "no-store"


def test_a_service_error_page_is_the_kits_with_the_services_words():
    site = Site("sqlite://", prefix="/services/catalogue/", hub_prefix="/hub/")
    for language, words in (("en", "There is no such page"), ("fr", "Cette page n’existe pas")):
        page = BeautifulSoup(site.render("error.html", language, page="", user=None, viewer=None, status_code=404,
                                         reason="Not Found", message=None), "html.parser")
        assert words in page.find(id="error-message").text
        assert page.find("main")["id"] == "tre-catalogue" and page.find(id="login")
    page = BeautifulSoup(site.render("error.html", "en", page="", user={"name": "alice"}, viewer=None,
                                     status_code=500, reason="Internal Server Error", message=None), "html.parser")
    assert "Something went wrong on our side" in page.find(id="error-message").text
    assert page.find(id="logout")["href"] == "/hub/logout"
