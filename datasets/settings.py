"""One typed settings object for the whole TRE, read from ``TRE_*`` environment variables.

The hub configuration, the CLI and the tests all build their paths from here, so a demo, a test
run and a production host differ only in their environment.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class TRESettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRE_", extra="ignore")

    home: Path = Field(
        default=Path("/var/lib/tre"),
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
    hub_port: int = 8081
    proxy_api_port: int = 8001
    catalogue_port: int = Field(default=8082, description="Loopback port of the catalogue pages service.")
    egress_port: int = Field(default=8083, description="Loopback port of the egress review service.")
    egress_max_file_bytes: int = Field(default=200 * 1024**2, description="Largest file an export request may hold.")
    egress_max_request_bytes: int = Field(default=1024**3, description="Largest total of one export request's files.")
    # Test-only: seconds to pause while freezing each file, so a test can kill the service mid-submission.
    egress_test_slow_freeze: float = 0.0
    smtp_host: str | None = Field(default=None, description="Mail server for notifications; none, no email.")
    smtp_port: int = 25
    smtp_from: str | None = None
    singleuser_image: str = "tre/singleuser:latest"
    mem_limit: str = "2G"
    cpu_limit: float = 1.0
    pids_limit: int = 512
    idle_timeout: int = Field(default=3600, description="Seconds of inactivity before a workspace is stopped.")
    reconcile_interval: float = Field(default=30.0, description="Seconds between catalogue reconciliations.")
    proxy_command: str = str(REPO_ROOT / "node_modules" / ".bin" / "configurable-http-proxy")
    # --- sign-on through an OpenID Connect provider (datasets/oidc_login.py); none: the demo login
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
    def secrets_dir(self) -> Path:
        return self.home / "secrets"
