"""A refused start's pages say why even after its server row is gone (``RefusedStarts``): the hub
answers "<user> has no such server <name>" then, and the error page shows the refusal instead."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from bs4 import BeautifulSoup
from jinja2 import ChoiceLoader, DictLoader, Environment, FileSystemLoader
from tornado import web

from hub.pages.home_page import TEMPLATES, HomePageSource
from spawner.catalogue_workspace import CatalogueUnavailable, RefusedStarts, WorkspaceRefused

REFUSAL = "Your access to bob-later starts on 2027-01-01: ask the data steward if that date is wrong."


def no_such_server(user: str, server: str) -> web.HTTPError:
    return web.HTTPError(404, f"{user} has no such server {server}")  # as JupyterHub's pages raise it


def test_a_forgotten_refusal_answers_for_its_own_user_and_server_only():
    starts = RefusedStarts()
    starts.remember("bob", "bob-later", WorkspaceRefused(REFUSAL))
    assert starts.after("bob", no_such_server("bob", "bob-later")) == (403, REFUSAL)
    assert starts.after("alice", no_such_server("alice", "bob-later")) is None
    assert starts.after("alice", no_such_server("bob", "bob-later")) is None  # another's server: nothing
    assert starts.after("bob", no_such_server("bob", "other")) is None
    assert starts.after(None, no_such_server("bob", "bob-later")) is None
    assert starts.after("bob", web.HTTPError(403, "bob has no such server bob-later")) is None
    assert starts.after("bob", ValueError("bob has no such server bob-later")) is None


def test_a_new_start_forgets_the_old_refusal_and_old_ones_expire():
    starts = RefusedStarts(keep_seconds=3600)
    starts.remember("bob", "p", CatalogueUnavailable("Try again in a minute."))
    assert starts.after("bob", no_such_server("bob", "p")) == (503, "Try again in a minute.")
    starts.forget("bob", "p")
    assert starts.after("bob", no_such_server("bob", "p")) is None
    expired = RefusedStarts(keep_seconds=0)
    expired.remember("bob", "p", WorkspaceRefused(REFUSAL))
    assert expired.after("bob", no_such_server("bob", "p")) is None


def test_the_memory_is_bounded_and_keeps_the_newest():
    starts = RefusedStarts(most=3)
    for index in range(5):
        starts.remember("bob", f"p{index}", WorkspaceRefused(f"refused {index}"))
    kept = [i for i in range(5) if starts.after("bob", no_such_server("bob", f"p{i}"))]
    assert kept == [2, 3, 4]


def render_error(starts: RefusedStarts, accept_language: str, exception: Exception, user: str = "bob") -> BeautifulSoup:
    """The hub's 404 page (ours, over our error.html, over a stand-in for JupyterHub's with its two
    blocks), as the hub renders it for "no such server"."""
    env = Environment(loader=ChoiceLoader([
        FileSystemLoader(TEMPLATES),
        DictLoader({"templates/error.html": "{% block h1_error %}{% endblock %}{% block error_detail %}{% endblock %}"}),
    ]), autoescape=True)
    request = SimpleNamespace(headers={"Accept-Language": accept_language})
    static_url = SimpleNamespace(__self__=SimpleNamespace(request=request))
    html = env.get_template("404.html").render(
        static_url=static_url, base_url="/hub/", user=SimpleNamespace(name=user), exception=exception,
        status_code=404, status_message="Not Found", message=exception.log_message, message_html="",
        extra_error_html="", tre=HomePageSource("sqlite://"), tre_refused_starts=starts)
    return BeautifulSoup(html, "html.parser")


def test_the_error_page_of_a_forgotten_refusal_says_why_in_the_browser_language():
    starts = RefusedStarts()
    starts.remember("bob", "bob-later", WorkspaceRefused(REFUSAL))
    page = render_error(starts, "fr-FR,fr;q=0.9", no_such_server("bob", "bob-later"))
    assert page.find(id="start-refused").get_text(strip=True) == "Votre espace de travail n’a pas été démarré"
    assert page.find(id="error-message").get_text(strip=True) == REFUSAL
    assert page.find(id="back-home")["href"] == "/hub/home"
    assert "no such server" not in page.get_text()
    # another person's 404 for the same name stays the hub's 404 page
    other = render_error(starts, "en-GB", no_such_server("alice", "bob-later"), user="alice")
    assert other.find(id="start-refused") is None and other.find(id="error-message") is None
    assert "Jupyter has lots of moons" in other.get_text()
    french_other = render_error(starts, "fr-FR", no_such_server("alice", "x"), user="alice")
    assert "Jupyter a bien des lunes" in french_other.get_text()


def test_a_forgotten_unreachable_catalogue_offers_to_start_again():
    starts = RefusedStarts()
    starts.remember("bob", "p", CatalogueUnavailable("The catalogue cannot be reached just now."))
    page = render_error(starts, "en-GB", no_such_server("bob", "p"))
    assert page.find(id="start-failed").get_text(strip=True) == "Your workspace did not start"
    assert "You can start it again from your home page." in page.get_text()
