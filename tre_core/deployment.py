"""Whether the databases suit how the TRE is deployed: refused at start, before anything is served.

On one machine SQLite is fine: the hub, the CLI and the services share one file, and SQLite
serialises their writes. Past one machine it is not: a SQLite file on shared storage is not safe
to write from two hosts (its locks rely on POSIX locks that network file systems honour badly),
and egress review replicas coordinate through row locks (``SELECT ... FOR UPDATE``) that SQLite
silently ignores. So a multi-host deployment, or more than one egress replica, must name
PostgreSQL for both databases; the hub and the egress service call ``require_sound_deployment``
as they start and stop with the message instead of running unsafely.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url

from tre_core.settings import TRESettings


class DeploymentError(ValueError):
    """The settings describe a deployment these databases cannot carry; the message says what to set."""


def _backend(url: str) -> str:
    return make_url(url).get_backend_name()


def problems(settings: TRESettings) -> list[str]:
    """Every reason the databases do not suit the deployment, each saying which setting to change."""
    found = []
    many_hosts = settings.deployment == "multi-host"
    replicas = settings.egress_replicas > 1
    if not (many_hosts or replicas):
        return found
    why = ("TRE_DEPLOYMENT=multi-host" if many_hosts else
           f"TRE_EGRESS_REPLICAS={settings.egress_replicas}")
    databases = [("the TRE database (catalogue, egress records, audit log)", "TRE_DATABASE_URL",
                  settings.catalogue_url)]
    if many_hosts:
        databases.append(("the hub's database", "TRE_HUB_DATABASE_URL", settings.hub_db_url))
    for what, variable, url in databases:
        backend = _backend(url)
        if backend != "postgresql":
            found.append(f"{why} needs PostgreSQL for {what}, but {variable} names {backend} "
                         f"({make_url(url).render_as_string(hide_password=True)}). Set {variable} to a "
                         f"postgresql+psycopg://user:password@host:5432/name URL that every host reaches.")
    return found


def require_sound_deployment(settings: TRESettings) -> None:
    """Raise ``DeploymentError`` naming every problem, so that one start shows them all."""
    if found := problems(settings):
        raise DeploymentError("The TRE will not start: " + " ".join(found))
