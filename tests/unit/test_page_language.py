"""<html lang> of the hub's pages follows the language they are shown in (the browser tests check
the running hub; these check the template rewrite against the installed JupyterHub's page.html)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from jinja2 import DictLoader, Environment, FileSystemLoader
from jupyterhub._data import DATA_FILES_PATH

from hub.pages.page_language import HUB_HTML_TAG, PageLanguage, browser_language

HUB_TEMPLATES = Path(DATA_FILES_PATH) / "templates"


class Handler:
    """Just what a template can reach of a hub handler: its request, through ``static_url``."""

    def __init__(self, accept_language: str | None) -> None:
        self.request = SimpleNamespace(headers={} if accept_language is None else {"Accept-Language": accept_language})

    def static_url(self, path: str) -> str:
        return f"/hub/static/{path}"


def test_the_installed_hub_page_still_has_the_tag_we_rewrite():
    # If JupyterHub changes its base page, the rewrite would silently stop: fail here instead.
    assert HUB_HTML_TAG in (HUB_TEMPLATES / "page.html").read_text()


def test_the_hub_page_loads_with_the_tag_rewritten():
    env = Environment(loader=FileSystemLoader([str(HUB_TEMPLATES)]), extensions=[PageLanguage], autoescape=True)
    source = env.loader.get_source(env, "page.html")[0]
    rewritten = PageLanguage(env).preprocess(source, "page.html")
    assert HUB_HTML_TAG not in rewritten and 'lang="{{ tre_page_language(static_url) }}"' in rewritten
    env.get_template("page.html")  # still a valid template once rewritten


@pytest.mark.parametrize(("accept_language", "lang"), [("fr-FR,fr;q=0.9", "fr"), ("en-GB,en;q=0.9", "en"),
                                                        ("de-DE", "en"), (None, "en")])
def test_a_page_says_the_language_of_the_browser(accept_language, lang):
    env = Environment(loader=DictLoader({
        "page.html": '<!DOCTYPE HTML>\n<html lang="en"><body>{% block main %}{% endblock %}</body></html>',
        "home.html": '{% extends "page.html" %}{% block main %}hello{% endblock %}',
    }), extensions=[PageLanguage], autoescape=True)
    html = env.get_template("home.html").render(static_url=Handler(accept_language).static_url)
    assert f'<html lang="{lang}">' in html


def test_other_templates_are_left_as_they_are():
    env = Environment(loader=DictLoader({"other.html": '<html lang="en">x</html>'}), extensions=[PageLanguage])
    assert env.get_template("other.html").render() == '<html lang="en">x</html>'


def test_without_a_request_the_page_is_english():
    assert browser_language(None) == "en"
