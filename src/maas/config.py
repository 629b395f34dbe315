"""Settings: all configuration, validated once at start. The only module that reads the environment.

Precedence: CLI flag (passed in by the CLI as overrides), then `MAAS_*` environment variables, then
defaults that work on a laptop (SQLite and files under `MAAS_HOME`, host 127.0.0.1, CPU).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

MAX_WORKERS = 256  # server processes of one `maas serve`


def _default_home() -> Path:
    return Path.home() / ".maas"


class RegistrySettings(BaseSettings):
    """Where versions and artifacts live. `url` defaults to a SQLite file under `MAAS_HOME`."""

    model_config = SettingsConfigDict(env_prefix="MAAS_REGISTRY_", extra="forbid")

    url: str | None = Field(
        default=None, description="SQLAlchemy URL; SQLite under MAAS_HOME if unset"
    )
    artifacts_dir: Path | None = Field(default=None, description="defaults to MAAS_HOME/artifacts")


class ServeSettings(BaseSettings):
    """How `maas serve` listens and the default batching policy of every served model.

    Per-model policies and the model list can also come from a serve file (`config`, YAML, see
    `ServeFile`); a field set by a flag or `MAAS_SERVE_*` variable wins over the file.
    """

    model_config = SettingsConfigDict(
        env_prefix="MAAS_SERVE_", extra="forbid", populate_by_name=True
    )

    host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)
    grpc_port: int = Field(default=8001, ge=0, le=65535)
    config: Path | None = Field(default=None, description="serve file (YAML): models, policies")
    max_request_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_response_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="larger answers are refused (413)"
    )
    request_timeout_s: float = Field(default=30.0, gt=0)
    max_batch_size: int = Field(default=32, ge=1, le=4096)
    max_queue_delay_us: int = Field(default=5_000, ge=0, le=1_000_000)  # see BatchPolicy
    preferred_batch_sizes: list[int] = Field(default_factory=list)
    instances: int = Field(default=1, ge=1, le=256)
    intra_op_threads: int = Field(default=1, ge=1, le=256)
    max_queue_size: int = Field(default=1024, ge=1)
    poll_interval_s: float = Field(
        default=2.0, ge=0, le=3600, description="registry poll for new versions; 0: never"
    )
    grace_period_s: float = Field(
        default=30.0, ge=0, le=3600, description="on SIGTERM, time in-flight requests get"
    )
    max_connections: int | None = Field(
        default=None, ge=1, description="concurrent HTTP connections and gRPC calls; None: no cap"
    )
    workers: Annotated[int, Field(ge=1, le=MAX_WORKERS)] | Literal["auto"] = Field(
        default=1,
        description="server processes sharing the ports; auto: one per CPU this process may use",
    )
    metrics_dir: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("PROMETHEUS_MULTIPROC_DIR", "metrics_dir"),
        description="folder of the workers' shared metric files (set by `maas serve --workers`)",
    )


class SecuritySettings(BaseSettings):
    """Authentication, rate limits, encryption at rest and signatures (see docs/security.md).

    `MAAS_ENCRYPTION_KEY` and `MAAS_REDIS_URL` are read under those exact names (as well as with
    the `MAAS_SECURITY_` prefix).
    """

    model_config = SettingsConfigDict(
        env_prefix="MAAS_SECURITY_", extra="forbid", populate_by_name=True
    )

    no_auth: bool = Field(default=False, description="serve without authentication (local only)")
    key_poll_interval_s: float = Field(default=5.0, gt=0, le=3600)
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_jwks_file: Path | None = Field(default=None, description="JWKS document (JSON file)")
    jwt_algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256", "EdDSA"])
    default_rate_limit: str | None = Field(
        default=None, description="limit for keys without their own, e.g. 100/s"
    )
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MAAS_REDIS_URL", "MAAS_SECURITY_REDIS_URL", "redis_url"),
        description="share rate-limit counters across replicas (redis://127.0.0.1:6379/0)",
    )
    encryption_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "MAAS_ENCRYPTION_KEY", "MAAS_SECURITY_ENCRYPTION_KEY", "encryption_key"
        ),
        description="base64 of 32 random bytes: artifacts are stored with AES-256-GCM",
    )
    encryption_key_file: Path | None = Field(
        default=None, description="file holding the base64 key (instead of MAAS_ENCRYPTION_KEY)"
    )
    require_signatures: bool = Field(
        default=False, description="refuse to load or alias versions without a valid signature"
    )
    signing_public_key: Path | None = Field(
        default=None, description="PEM public key that version signatures must verify against"
    )
    tls_cert_file: Path | None = Field(default=None, description="PEM server certificate")
    tls_key_file: Path | None = Field(default=None, description="PEM key of the certificate")
    tls_client_ca_file: Path | None = Field(
        default=None, description="PEM CA of client certificates: require them (mTLS)"
    )


class VersionPolicyConfig(BaseModel):
    """Which versions of a model a server keeps loaded (besides those its aliases point at).

    Give one of `latest: N` (the N newest), `specific: [1, 3]` or `all: true`.
    """

    model_config = ConfigDict(extra="forbid")

    latest: int | None = Field(default=None, ge=1, le=1000)
    specific: list[int] | None = None
    all: bool = False


class ModelServeConfig(BaseModel):
    """One model's entry in a serve file: which version to serve and its batching policy."""

    model_config = ConfigDict(extra="forbid")

    ref: str | None = Field(default=None, description="version, alias or latest")
    versions: VersionPolicyConfig | None = Field(
        default=None, description="versions kept loaded: {latest: N}, {specific: [..]}, {all: true}"
    )
    max_batch_size: int | None = Field(default=None, ge=1, le=4096)
    max_queue_delay_us: int | None = Field(default=None, ge=0, le=1_000_000)
    preferred_batch_sizes: list[int] | None = None
    instances: int | None = Field(default=None, ge=1, le=256)
    intra_op_threads: int | None = Field(default=None, ge=1, le=256)
    max_queue_size: int | None = Field(default=None, ge=1)
    rate_limit: str | None = Field(
        default=None, description="per key on this model, e.g. 50/s (besides the key's own)"
    )
    max_request_bytes: int | None = Field(
        default=None, ge=1024, description="largest request body for this model"
    )


class ServeFile(BaseModel):
    """A serve file (`maas serve --config serve.yaml`): limits and models to serve.

    Example::

        max_request_bytes: 8388608
        defaults: {max_batch_size: 16}
        models:
          digits: {ref: production, max_batch_size: 64, instances: 2}
    """

    model_config = ConfigDict(extra="forbid")

    max_request_bytes: int | None = Field(default=None, ge=1024)
    max_response_bytes: int | None = Field(default=None, ge=1024)
    request_timeout_s: float | None = Field(default=None, gt=0)
    defaults: ModelServeConfig = Field(default_factory=ModelServeConfig)
    models: dict[str, ModelServeConfig] = Field(default_factory=dict)


def load_serve_file(path: Path) -> ServeFile:
    """Read and validate a serve file; errors name the file and the bad key."""
    import yaml
    from pydantic import ValidationError

    from maas.errors import InvalidInput

    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise InvalidInput(f"cannot read serve file {path}: {err}") from err
    try:
        return ServeFile.model_validate(doc)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        raise InvalidInput(f"serve file {path} is invalid: {problems}") from err


class Settings(BaseSettings):
    """All of maas's configuration for one process."""

    model_config = SettingsConfigDict(env_prefix="MAAS_", extra="ignore")

    home: Path = Field(default_factory=_default_home)
    log_level: str = "info"
    log_format: str = "text"
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)

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


def child_environment(**extra: str) -> dict[str, str]:
    """This process's environment plus `extra`: the environment of a process it starts."""
    import os

    return {**os.environ, **extra}
