"""Hub configuration for benchmarks: the TRE's own, plus an admin service token for the driver,
and, when TRE_BENCH_SPAWNER=plain, a plain DockerSpawner with the same image and network."""

import os
from pathlib import Path

load_subconfig(str(Path(__file__).resolve().parent.parent / "jupyterhub_config.py"))  # noqa: F821
c = get_config()  # noqa: F821

# Only the driver's service and the extraction service (a start waits for its project's extracts,
# which that service builds): the culler and reconciler are not on the spawn path. The load
# benchmark (TRE_BENCH_KEEP_SERVICES=1) browses the catalogue and egress services: it keeps them.
driver = {"name": "benchmark", "api_token": os.environ["TRE_BENCH_TOKEN"]}
driver_role = {"name": "benchmark", "scopes": ["admin:users", "admin:servers"], "services": ["benchmark"]}
if os.environ.get("TRE_BENCH_KEEP_SERVICES"):
    c.JupyterHub.services = [*c.JupyterHub.services, driver]
    c.JupyterHub.load_roles = [*c.JupyterHub.load_roles, driver_role]
else:
    c.JupyterHub.services = [*(s for s in c.JupyterHub.services if s["name"] == "extraction"), driver]
    c.JupyterHub.load_roles = [driver_role]

if os.environ.get("TRE_BENCH_SPAWNER") == "plain":
    c.JupyterHub.spawner_class = "docker"
    c.DockerSpawner.image = os.environ["TRE_BENCH_IMAGE"]
    c.DockerSpawner.network_name = os.environ["TRE_BENCH_NETWORK"]
    c.DockerSpawner.use_internal_ip = True
    c.DockerSpawner.remove = True
    c.DockerSpawner.pull_policy = "never"
    c.DockerSpawner.hub_connect_url = os.environ["TRE_BENCH_HUB_CONNECT_URL"]
    # JupyterHub's own defaults, not the TRE's longer ones: the plain spawner is measured as it comes.
    c.Spawner.http_timeout = 30
    c.Spawner.start_timeout = 60
    c.DockerSpawner.extra_create_kwargs = {"labels": {"tre.managed": "true", "tre.instance": os.environ["TRE_INSTANCE"]}}
