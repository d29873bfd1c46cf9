"""The package index's settings: the TRE's (its port is there, for the firewall), plus where it fetches from."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from tre_core.settings import TRESettings


class PackageIndexSettings(TRESettings):
    package_upstream_url: str = Field(
        default="https://pypi.org/simple/", description="The index the host fetches approved packages from "
                                                         "(PEP 503 simple API, with sha256 hashes).")
    extra_ca_bundle: Path | None = Field(
        default=None, description="TRE_EXTRA_CA_BUNDLE: CA certificates of the platform's TLS-intercepting proxy.")

    @property
    def package_root(self) -> Path:
        """The folders the index serves (allowlist/, approved/); written only by ``package_index.store``."""
        return self.home / "packages"

    @property
    def ca_bundle(self) -> str | None:
        return str(self.extra_ca_bundle) if self.extra_ca_bundle else None
