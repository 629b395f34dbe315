"""`ServingConfig` from settings and a serve file: per-model policies, explicit settings win."""

from __future__ import annotations

from pathlib import Path

import pytest

from maas.config import ServeSettings
from maas.errors import InvalidInput
from maas.serving.options import ServingConfig


def test_serve_file_tunes_models_and_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "serve.yaml"
    path.write_text(
        "max_request_bytes: 4096\n"
        "defaults: {max_batch_size: 16, instances: 2}\n"
        "models:\n"
        "  digits: {ref: production, max_batch_size: 64, preferred_batch_sizes: [8, 32]}\n"
        "  iris: {}\n"
    )
    monkeypatch.setenv("MAAS_SERVE_INSTANCES", "3")
    config = ServingConfig.from_settings(ServeSettings(config=path))
    assert config.max_request_bytes == 4096
    assert config.models == ("digits@production", "iris")
    digits = config.policy_for("digits")
    assert (digits.max_batch_size, digits.preferred_batch_sizes) == (64, (8, 32))
    assert digits.instances == 3  # MAAS_SERVE_INSTANCES beats the file's defaults
    assert config.policy_for("iris").max_batch_size == 16
    assert config.policy_for("other") == config.default_policy


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models: {m: {max_batch: 3}}\n", "max_batch"),
        ("max_request_bytes: [\n", "cannot read serve file"),
        ("models: {m: {max_batch_size: 8, preferred_batch_sizes: [16]}}\n", "preferred"),
    ],
)
def test_bad_serve_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "serve.yaml"
    path.write_text(text)
    with pytest.raises(InvalidInput, match=message):
        ServingConfig.from_settings(ServeSettings(config=path))


def test_settings_without_a_file_give_the_default_policy() -> None:
    config = ServingConfig.from_settings(ServeSettings(max_batch_size=4, max_queue_delay_us=0))
    assert config.models == ()
    assert config.default_policy.max_batch_size == 4
    assert config.default_policy.max_queue_delay_us == 0


def test_max_response_bytes_from_the_environment_the_file_and_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ServingConfig.from_settings(ServeSettings()).max_response_bytes == 64 * 1024 * 1024
    path = tmp_path / "serve.yaml"
    path.write_text("max_response_bytes: 1048576\n")
    assert ServingConfig.from_settings(ServeSettings(config=path)).max_response_bytes == 1048576
    monkeypatch.setenv("MAAS_SERVE_MAX_RESPONSE_BYTES", "2048")
    assert ServingConfig.from_settings(ServeSettings()).max_response_bytes == 2048
    explicit = ServingConfig.from_settings(ServeSettings(config=path))
    assert explicit.max_response_bytes == 2048  # the variable beats the file
    monkeypatch.setenv("MAAS_SERVE_MAX_RESPONSE_BYTES", "10")
    with pytest.raises(ValueError, match="max_response_bytes"):
        ServeSettings()
