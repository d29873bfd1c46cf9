"""JupyterHub configuration of the TRE: wiring only. Settings come from TRE_* environment
variables (tre_core/settings.py); logic lives in the packages, where it is tested."""

import os
import sys
from functools import partial

from datasets.catalogue import known_people
from datasets.quotas import default_quotas, project_storage
from hub import file_reads, firewall
from hub.hardening import tornado_settings
from egress_review.__main__ import airlock_from
from hub.pages.home_page import TEMPLATES, HomePageSource, landing_handlers
from spawner.catalogue_workspace import REFUSED_STARTS
from tre_core.db import session_scope
from tre_core.deployment import DeploymentError, require_sound_deployment
from tre_core.settings import TRESettings

settings = TRESettings()
c = get_config()  # noqa: F821 - provided by JupyterHub

# --- where it listens -------------------------------------------------------------------------
c.JupyterHub.bind_url = f"http://{settings.public_ip}:{settings.public_port}"
# Workspaces reach the hub API through their project network's gateway, so the hub listens on
# all addresses of the host; the firewall (hub/firewall.py) keeps its port to the loopback
# interface and the project bridges, and the spawner starts nothing without those rules.
c.JupyterHub.hub_ip = "0.0.0.0"
c.JupyterHub.hub_port = settings.hub_port
c.JupyterHub.hub_connect_ip = "127.0.0.1"  # how the proxy reaches it; workspaces get their own URL
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings.proxy_api_port}"
c.ConfigurableHTTPProxy.command = [settings.proxy_command]
# No version banners, SameSite cookies (Secure and HSTS over TLS), nosniff and a CSP (hub/hardening.py).
c.JupyterHub.tornado_settings = tornado_settings(tls=settings.public_tls)

# --- state -------------------------------------------------------------------------------------
# SQLite on one machine; PostgreSQL for both databases past one (README: "More than one host").
try:
    require_sound_deployment(settings)
except DeploymentError as error:
    sys.exit(str(error))
c.JupyterHub.db_url = settings.hub_db_url
c.JupyterHub.cookie_secret_file = str(settings.secrets_dir / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(settings.home / "jupyterhub.pid")
c.ConfigurableHTTPProxy.pid_file = str(settings.home / "proxy.pid")

# --- who signs in: people of the catalogue ----------------------------------------------------
if settings.oidc_enabled:
    # An institution's OpenID provider (README: "Signing in through your institution"); a missing or
    # wrong TRE_OIDC_* setting, or a provider that cannot be reached, stops the hub naming it.
    from hub.auth.oidc_login import OIDCSettingsError, authenticator_config, crypt_key, provider_endpoints
    try:
        oidc = authenticator_config(settings, provider_endpoints(settings))
    except OIDCSettingsError as error:
        sys.exit(f"TRE sign-on: {error}")
    c.JupyterHub.authenticator_class = "tre-oidc"
    for trait, value in oidc.items():
        setattr(c.TREOIDCAuthenticator, trait, value)
    # auth state (the provider's tokens) is stored encrypted with this key
    os.environ.setdefault("JUPYTERHUB_CRYPT_KEY", crypt_key(settings.secrets_dir))
else:
    c.JupyterHub.authenticator_class = "tre-demo"
    c.DemoAuthenticator.catalogue_url = settings.catalogue_url
    c.DemoAuthenticator.password_file = str(settings.secrets_dir / "demo-password")
# Platform admins are not JupyterHub admins: that built-in role may open any server and mint
# tokens as anyone, which would let an admin read every project's data. They get "tre-admin"
# below instead. Only the catalogue decides who is an admin.
with session_scope(settings.catalogue_url) as session:
    platform_admins = sorted(p.username for p in known_people(session).values() if p.is_admin)

# --- one named server per project --------------------------------------------------------------
c.JupyterHub.allow_named_servers = True
# Each person lands on the home page, or on the page of their role when they have no project (a
# checker on the review queue): hub/pages/home_page.py's LandingHandler, among the pages below.
c.JupyterHub.default_url = "/hub/tre/landing"
c.JupyterHub.spawner_class = "project"
c.ProjectSpawner.image = settings.singleuser_image
c.ProjectSpawner.instance = settings.instance
c.ProjectSpawner.catalogue_url = settings.catalogue_url
# Workspaces mount their project's extracts (extracts/), never the datasets under data_root.
c.ProjectSpawner.extracts_root = str(settings.extracts_root)
c.ProjectSpawner.workspaces_root = str(settings.workspaces_root)
c.ProjectSpawner.default_mem_limit = settings.mem_limit
c.ProjectSpawner.default_cpu_limit = settings.cpu_limit
c.ProjectSpawner.pids_limit = settings.pids_limit
# no workspace starts without its host firewall, which opens the hub's API and the package index
# (the spawner asks; the hub package knows the rules)
c.ProjectSpawner.firewall_in_place = firewall.guard(settings.hub_port, settings.package_index_port)
c.ProjectSpawner.read_max_bytes = settings.workspace_read_max_bytes  # TRE_READ_MAX_BYTES in the workspace
# pip in every workspace uses the TRE's package index (package_index/) on its gateway, and only it
c.ProjectSpawner.package_index_port = settings.package_index_port
# A hub restart (an upgrade, a crash) leaves workspaces running; the new hub reconnects to them.
c.JupyterHub.cleanup_servers = False
# Jupyter config in a researcher's home must not switch the workspace's locks off.
c.Spawner.disable_user_config = True
c.Spawner.http_timeout = 120
# Starts wait in one first-come, first-served line for a free slot (spawner/start_queue.py), their
# place shown on the spawn page. JupyterHub's start_timeout counts that wait too, so it is long; one
# start, once it has its slot, has its own limit, ProjectSpawner.slot_start_timeout (180 s).
c.Spawner.start_timeout = settings.start_timeout
c.ProjectSpawner.start_threads = settings.start_threads
# Quotas enforced by the kernel (spawner/storage.py): /project and homes are filesystems of their size
c.ProjectSpawner.project_quota = settings.project_quota
c.ProjectSpawner.home_quota = settings.home_quota
c.ProjectSpawner.tmp_quota = settings.tmp_quota
c.ProjectSpawner.storage_preallocate = settings.storage_preallocate
c.ProjectSpawner.storage_reserve = settings.storage_reserve
if settings.concurrent_starts:
    c.ProjectSpawner.concurrent_starts = settings.concurrent_starts
# The start queue limits starts, and tells each person their place; the hub's own limit (100 starts
# pending) would refuse the 101st person in line with "too many users trying to log in".
c.JupyterHub.concurrent_spawn_limit = 0

# --- services: idle culler, catalogue reconciler, scrubber, extraction, pages ------------------------------------
c.JupyterHub.services = [
    # hub.service_runner ends the services it runs when the hub that started them is gone (a crash, say)
    {"name": "idle-culler", "command": [sys.executable, "-m", "hub.service_runner", "--",
                                        sys.executable, "-m", "jupyterhub_idle_culler",
                                        f"--timeout={settings.idle_timeout}",
                                        f"--cull-every={max(10, min(300, settings.idle_timeout // 4))}"]},
    {"name": "reconciler", "command": [sys.executable, "-m", "hub.service_runner", "--",
                                       sys.executable, "-m", "hub.reconciler",
                                       f"--interval={settings.reconcile_interval}"],
     "environment": {k: v for k, v in os.environ.items() if k.startswith("TRE_")}},
    # Re-hashes dataset versions at a bounded rate; suspends one that changed (no API token needed:
    # the reconciler stops the workspaces that mount a suspended version).
    {"name": "scrubber", "command": [sys.executable, "-m", "hub.service_runner", "--",
                                     sys.executable, "-m", "hub.scrubber"],
     "environment": {k: v for k, v in os.environ.items() if k.startswith("TRE_")}},
    # Builds the projects' extracts (grants approved or changed, opt-outs), each in a process of its
    # own; a start waits for its extracts and shows their progress.
    {"name": "extraction", "command": [sys.executable, "-m", "hub.service_runner", "--",
                                       sys.executable, "-m", "hub.extraction"],
     "environment": {k: v for k, v in os.environ.items() if k.startswith("TRE_")}},
    # The catalogue pages for people (/services/catalogue/); part of the platform, so signing in to
    # them asks no confirmation.
    {"name": "catalogue", "url": f"http://127.0.0.1:{settings.catalogue_port}",
     "command": [sys.executable, "-m", "hub.catalogue_service"], "oauth_no_confirm": True,
     "environment": {k: v for k, v in os.environ.items() if k.startswith("TRE_")}},
    # The package index, which workspaces reach on their gateway like the hub's API (so it listens on
    # all addresses; the host firewall keeps its port to the loopback and the project bridges). It
    # needs no scope: it asks the hub whose token a workspace presents, which any token may ask.
    {"name": "packages", "url": f"http://0.0.0.0:{settings.package_index_port}",
     "command": [sys.executable, "-m", "hub.service_runner", "--", sys.executable, "-m", "package_index"],
     "environment": {k: v for k, v in os.environ.items() if k.startswith("TRE_")}},
    # The egress review (/services/egress/): export requests and their reviews; restarted by the
    # hub if it dies.
    {"name": "egress", "url": f"http://127.0.0.1:{settings.egress_port}",
     "command": [sys.executable, "-m", "egress_review"], "oauth_no_confirm": True,
     "environment": {k: v for k, v in os.environ.items() if k.startswith("TRE_")}},
]
c.JupyterHub.load_roles = [
    # See who is where and stop servers; never enter one, never act or mint tokens as someone.
    {"name": "tre-admin", "description": "Platform admins: the hub's admin page, read-only, and stopping servers",
     "users": platform_admins,
     "scopes": ["admin-ui", "list:users", "read:users", "read:servers", "delete:servers", "list:groups",
                "read:groups", "list:services", "read:services", "read:hub"]},
    # Every signed-in person may use the catalogue pages (the default user role is "self" only).
    {"name": "user", "scopes": ["self", "access:services!service=catalogue", "access:services!service=egress"]},
    {"name": "idle-culler", "services": ["idle-culler"],
     "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"]},
    {"name": "reconciler", "services": ["reconciler"],
     "scopes": ["list:users", "read:servers", "delete:servers", "list:groups", "read:groups", "admin:groups"]},
]
# A workspace's own token: report activity and be reached, nothing else of the hub's API.
c.Spawner.server_token_scopes = ["users:activity!user", "access:servers!server"]
# ...and record each file content it shows in the browser, which it does only if this answers yes
# (/hub/api/tre/file-reads; JupyterHub calls extra_handlers deprecated, but a service could not tell
# which server is asking: here the server's own token says who and which project).
c.JupyterHub.extra_handlers = file_reads.handlers(
    settings.catalogue_url, settings.workspace_daily_read_bytes,
    (settings.smtp_host, settings.smtp_port, settings.smtp_from) if settings.smtp_host and settings.smtp_from else None)

# --- pages ---------------------------------------------------------------------------------------
c.JupyterHub.template_paths = [TEMPLATES]
# <html lang> of every hub page follows the language it is shown in (JupyterHub writes "en").
c.JupyterHub.jinja_environment_options = {"extensions": ["hub.pages.page_language.PageLanguage"]}
home_storage = partial(project_storage, workspaces_root=settings.workspaces_root, defaults=default_quotas(settings))
# what waits for each person in the egress review (the review queue, their returned requests)
egress = airlock_from(settings)
home_source = HomePageSource(settings.catalogue_url, storage=home_storage,
                             review_queue=egress.queue, requests_of=egress.list_requests)
# tre_refused_starts: a refused start's pages say why even once its server row is gone
c.JupyterHub.template_vars = {"tre": home_source, "tre_demo_login": not settings.oidc_enabled,
                              "tre_refused_starts": REFUSED_STARTS}
c.JupyterHub.extra_handlers += landing_handlers(home_source)
