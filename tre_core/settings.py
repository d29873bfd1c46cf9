"""One typed settings object for the whole TRE, read from ``TRE_*`` environment variables.

The hub configuration, the CLI and the tests all build their paths from here, so a demo, a test
run and a production host differ only in their environment.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
PRODUCTION_HOME = Path("/var/lib/tre")
DEMO_HOME = REPO_ROOT / ".tre" / "demo"


def default_home() -> Path:
    """Where the state is when ``TRE_HOME`` is not set: a production host's ``/var/lib/tre``, or, on a
    machine where only ``./setup.sh demo`` ran, the demo's folder beside this checkout, so that the
    README's ``.venv/bin/tre audit verify`` finds the demo's database with no variable set."""
    if not (PRODUCTION_HOME / "tre.sqlite").exists() and (DEMO_HOME / "tre.sqlite").exists():
        return DEMO_HOME
    return PRODUCTION_HOME


class TRESettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRE_", extra="ignore")

    home: Path = Field(
        default_factory=default_home,
        description="State directory: databases, data store, project workspaces, secrets.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the TRE database (catalogue). Default: SQLite in `home`.",
    )
    instance: str = Field(
        default="demo",
        pattern=r"^[a-z0-9][a-z0-9-]{0,30}$",
        description="Name of this installation; every Docker object it creates is labelled with it.",
    )
    public_ip: str = "127.0.0.1"
    public_port: int = 8000
    public_tls: bool = Field(default=False, description="Served over HTTPS (a TLS proxy in front, as the Ansible "
                             "deployment's nginx): the hub's cookies are Secure and its pages send HSTS.")
    hub_port: int = 8081
    proxy_api_port: int = 8001
    catalogue_port: int = Field(default=8082, description="Loopback port of the catalogue pages service.")
    egress_port: int = Field(default=8083, description="Loopback port of the egress review service.")
    package_index_port: int = Field(
        default=8084, description="Port of the package index (package_index), which workspaces reach on their "
                                  "network's gateway beside the hub's API port; the host firewall allows both.")
    egress_max_file_bytes: int = Field(default=200 * 1024**2, description="Largest file an export request may hold.")
    egress_max_request_bytes: int = Field(default=1024**3, description="Largest total of one export request's files.")
    # Test-only: seconds to pause while freezing each file, so a test can kill the service mid-submission.
    egress_test_slow_freeze: float = 0.0
    smtp_host: str | None = Field(default=None, description="Mail server for notifications; none, no email.")
    smtp_port: int = 25
    smtp_from: str | None = None
    workspace_read_max_bytes: int = Field(
        default=5 * 1024**2, gt=0, description="Largest file whose content a workspace shows in the browser "
        "(notebooks, text, images); passed to each workspace as TRE_READ_MAX_BYTES.")
    workspace_daily_read_bytes: int = Field(
        default=200 * 1024**2, gt=0, description="A person's daily volume of file content shown in the "
        "browser; past it, reads are refused for the day and the data stewards alerted.")
    singleuser_image: str = "tre/singleuser:latest"
    mem_limit: str = "2G"
    cpu_limit: float = 1.0
    pids_limit: int = 512
    # --- storage quotas (datasets/quotas.py), enforced by the kernel; a project's own in the catalogue
    project_quota: str = Field(default="10G", pattern=r"^[1-9][0-9]*[kmgtKMGT]?$",
                               description="Default size of a project's /project, shared by its members.")
    home_quota: str = Field(default="2G", pattern=r"^[1-9][0-9]*[kmgtKMGT]?$",
                            description="Default size of each member's home in a project.")
    tmp_quota: str = Field(default="1G", pattern=r"^[1-9][0-9]*[kmgtKMGT]?$",
                           description="Default size of one workspace's /tmp (a tmpfs: counts against its memory).")
    storage_preallocate: bool = Field(
        default=True, description="Reserve each /project and home's whole quota on the host's disk when it is "
        "made, so that the workspaces together can never fill it; false: sparse images, which may overcommit.")
    storage_reserve: str = Field(
        default="5G", pattern=r"^[1-9][0-9]*[kmgtKMGT]?$",
        description="Free space always left on the host's disk for the databases and the egress store: no "
        "workspace storage is made or grown past it.")
    idle_timeout: int = Field(default=3600, description="Seconds of inactivity before a workspace is stopped.")
    reconcile_interval: float = Field(default=30.0, description="Seconds between catalogue reconciliations.")
    audit_checkpoint_interval: float = Field(
        default=300.0, description="Seconds between signed checkpoints of the audit log (written when it grew).")
    scrub_rate_mb_s: float = Field(default=50.0, ge=0, description="Most MB/s the background scrubber reads "
                                   "(0: as fast as the disk goes).")
    scrub_interval: float = Field(default=3600.0, gt=0, description="Seconds between the scrubber's passes.")
    # --- per-project extracts (extracts/): where they are built, and how the engine behaves
    extracts_root_dir: Path | None = Field(
        default=None, validation_alias="TRE_EXTRACTS_ROOT",
        description="Where per-project extracts are built and kept. Default: `home`/extracts.")
    optout_batch_seconds: float = Field(
        default=3600.0, ge=0, description="Seconds after the last recorded opt-out before the extracts that still "
        "hold those people are rebuilt (objections arriving together are batched into one rebuild).")
    extract_heartbeat_seconds: float = Field(
        default=10.0, gt=0, description="Seconds between the heartbeats of an extract being built.")
    extract_stale_seconds: float = Field(
        default=120.0, ge=0, description="An extract whose builder sent no heartbeat for this long may be taken "
        "over by another run (its process died).")
    # Test-only: seconds to pause after each partition, so a test can kill a build in the middle.
    extract_test_slow_partition: float = 0.0
    extraction_interval: float = Field(
        default=10.0, gt=0, description="Seconds between the extraction service's passes (hub/extraction.py): "
        "extracts to queue for new or changed grants and opt-outs, builds to start.")
    extraction_workers: int = Field(default=1, ge=1, description="Extracts built at once, each in a process of its own.")
    proxy_command: str = str(REPO_ROOT / "node_modules" / ".bin" / "configurable-http-proxy")
    # --- sign-on through an OpenID Connect provider (hub/auth/oidc_login.py); none: the demo login
    oidc_issuer: str | None = Field(
        default=None, description="Issuer URL of the OpenID provider; its endpoints are read from "
                                  "<issuer>/.well-known/openid-configuration at hub start.")
    oidc_authorize_url: str | None = Field(default=None, description="Authorization endpoint, instead of discovery.")
    oidc_token_url: str | None = Field(default=None, description="Token endpoint, instead of discovery.")
    oidc_userinfo_url: str | None = Field(default=None, description="Userinfo endpoint, instead of discovery.")
    oidc_end_session_url: str | None = Field(
        default=None, description="Provider logout endpoint, instead of discovery; none: logout ends the hub's session only.")
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = Field(default=None, description="Client secret; prefer oidc_client_secret_file.")
    oidc_client_secret_file: Path | None = Field(default=None, description="File holding the client secret.")
    oidc_username_claim: str = Field(default="preferred_username",
                                     description="Claim whose value is the catalogue username.")
    oidc_userdata_from_id_token: bool = Field(
        default=False, description="Read the claims from the ID token rather than the userinfo endpoint "
                                   "(Entra ID's userinfo has no preferred_username).")
    oidc_scopes: str = Field(default="openid profile email", description="Scopes asked for, space-separated.")
    oidc_acr_values: str | None = Field(
        default=None, description="acr_values sent with each sign-in, e.g. a multi-factor level the provider enforces.")
    oidc_pkce: bool = Field(default=True, description="Proof Key for Code Exchange (RFC 7636) on every sign-in.")
    oidc_callback_url: str | None = Field(
        default=None, description="The hub's redirect URI registered at the provider: https://<host>/hub/oauth_callback.")
    oidc_login_service: str = Field(default="your institution", description="Name on the sign-in button.")
    # --- lifecycle of closed projects (datasets/retention.py)
    project_retention_days: int = Field(
        default=180, ge=0, description="Days a closed project's files are kept before they are archived and "
                                       "wiped, unless its catalogue entry says otherwise.")
    archive_dir: Path | None = Field(default=None, description="Where sealed archives go. Default: `home`/archives.")
    archive_key_file: Path | None = Field(
        default=None, description="File holding the archives' key (64 hex characters), written from the "
                                  "installation's vault. Default: `home`/secrets/archive.key, made on first use.")
    # --- more than one host (README: "More than one host"; checked by datasets/deployment.py)
    hub_database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the hub's own database. Default: SQLite in `home`; PostgreSQL "
                    "(postgresql+psycopg://...) when the TRE runs on more than one host.",
    )
    deployment: Literal["single-host", "multi-host"] = Field(
        default="single-host",
        description="multi-host: hub, services or workspaces on more than one machine; both databases must "
                    "then be PostgreSQL.",
    )
    egress_replicas: int = Field(
        default=1, ge=1, description="How many egress review processes share the database and the store.")
    concurrent_starts: int = Field(
        default=0, ge=0, description="Workspace starts under way at once, the others waiting in line with "
        "their place shown (spawner/start_queue.py); 0: two per CPU core of the hub's host.")
    start_threads: int = Field(
        default=16, gt=0, description="Worker threads shared by all starts and stops for their catalogue reads, "
        "integrity checks and Docker calls (DockerSpawner's own pool has one).")
    start_timeout: int = Field(
        default=1800, gt=0, description="Seconds a start may take, waiting in the start queue included.")

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @cached_property
    def catalogue_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'tre.sqlite'}"

    @cached_property
    def hub_db_url(self) -> str:
        return self.hub_database_url or f"sqlite:///{self.home / 'jupyterhub.sqlite'}"

    @property
    def oidc_enabled(self) -> bool:
        """Whether people sign in through an OpenID provider rather than the demo's local login."""
        return bool(self.oidc_issuer or self.oidc_authorize_url)

    @property
    def data_root(self) -> Path:
        """Where dataset versions are stored, one folder per dataset; mounted read-only."""
        return self.home / "data"

    @property
    def workspaces_root(self) -> Path:
        """Project workspaces (/project) and per-user homes live below this folder."""
        return self.home / "workspaces"

    @property
    def egress_root(self) -> Path:
        """The egress service's own store and releases; never mounted in any workspace."""
        return self.home / "egress"

    @property
    def extracts_root(self) -> Path:
        """Per-project extracts, ``<project>/<dataset>@<version>/``; each mounted read-only in its project's
        workspaces only."""
        return self.extracts_root_dir or self.home / "extracts"

    @property
    def secrets_dir(self) -> Path:
        return self.home / "secrets"


def installation_secret(secrets_dir: Path, name: str, make: Callable[[], str]) -> str:
    """A secret of this installation kept in ``secrets_dir/name``: made once by ``make``, written
    whole (a temporary file renamed into place), readable by root only, never in the repository."""
    path = secrets_dir / name
    if not path.exists():
        secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(make() + "\n")
        tmp.chmod(0o600)
        tmp.replace(path)
    return path.read_text().strip()
