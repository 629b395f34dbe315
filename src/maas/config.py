"""Settings: all configuration, validated once at start. The only module that reads the environment.

Precedence: CLI flag (passed in by the CLI as overrides), then `MAAS_*` environment variables, then
defaults that work on a laptop (SQLite and files under `MAAS_HOME`, host 127.0.0.1, CPU).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path.home() / ".maas"


class RegistrySettings(BaseSettings):
    """Where versions and artifacts live. `url` defaults to a SQLite file under `MAAS_HOME`."""

    model_config = SettingsConfigDict(env_prefix="MAAS_REGISTRY_", extra="forbid")

    url: str | None = Field(default=None, description="SQLAlchemy URL; SQLite under MAAS_HOME if unset")
    artifacts_dir: Path | None = Field(default=None, description="defaults to MAAS_HOME/artifacts")


class Settings(BaseSettings):
    """All of maas's configuration for one process."""

    model_config = SettingsConfigDict(env_prefix="MAAS_", extra="ignore")

    home: Path = Field(default_factory=_default_home)
    log_level: str = "info"
    log_format: str = "text"
    registry: RegistrySettings = Field(default_factory=RegistrySettings)

    @property
    def registry_url(self) -> str:
        """The registry's database URL (SQLite file under `home` unless configured)."""
        if self.registry.url:
            return self.registry.url
        return f"sqlite:///{self.home / 'registry.db'}"

    @property
    def artifacts_dir(self) -> Path:
        """The folder of content-addressed artifacts."""
        return self.registry.artifacts_dir or self.home / "artifacts"

    @property
    def runs_dir(self) -> Path:
        """The folder of training runs (checkpoints, per-epoch metrics)."""
        return self.home / "runs"


def load_settings(**overrides: object) -> Settings:
    """Build the process's settings; keyword overrides (from CLI flags) win over the environment."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**clean)  # type: ignore[arg-type]  # overrides are validated by pydantic
