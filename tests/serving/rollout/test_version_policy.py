"""Version policies from the serve file, and the weighted picker and guard watch on their own."""

from __future__ import annotations

from pathlib import Path

import pytest

from maas.config import ServeSettings
from maas.errors import InvalidInput
from maas.registry.routes import RouteGuard
from maas.serving.options import ServingConfig, VersionPolicy
from maas.serving.routing import GuardWatch, WeightedPicker, percentile


def test_serve_file_version_policies(tmp_path: Path) -> None:
    path = tmp_path / "serve.yaml"
    path.write_text(
        "models:\n"
        "  digits: {versions: {latest: 2}}\n"
        "  iris: {versions: {specific: [3, 5]}}\n"
        "  mnist: {versions: {all: true}}\n"
        "  plain: {max_batch_size: 8}\n"
    )
    config = ServingConfig.from_settings(ServeSettings(config=path, poll_interval_s=0.5))
    assert config.poll_interval_s == 0.5
    assert config.grace_period_s == 30.0
    numbers = [1, 2, 3, 4, 5]
    assert config.version_policy_for("digits").choose(numbers) == {4, 5}
    assert config.version_policy_for("iris").choose(numbers) == {3, 5}
    assert config.version_policy_for("mnist").choose(numbers) == set(numbers)
    assert config.version_policy_for("plain").choose(numbers) == {5}


def test_a_bad_version_policy_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "serve.yaml"
    path.write_text("models:\n  digits: {versions: {newest: 2}}\n")
    with pytest.raises(InvalidInput, match=r"models\.digits\.versions\.newest"):
        ServingConfig.from_settings(ServeSettings(config=path))


def test_policy_keeps_specific_versions_that_exist() -> None:
    assert VersionPolicy(latest=1, specific=(2, 9)).choose([1, 2, 3]) == {2, 3}


def test_the_picker_is_exact_and_interleaved() -> None:
    picker = WeightedPicker([("1", 90), ("2", 10)])
    picks = [picker.pick() for _ in range(2000)]
    assert picks.count("1") == 1800
    assert picks.count("2") == 200
    assert "2" in picks[:10]
    picker.remove("2")
    assert {picker.pick() for _ in range(50)} == {"1"}


def test_the_picker_adds_weights_of_targets_on_one_version() -> None:
    picker = WeightedPicker([("3", 50), ("3", 25), ("4", 25), ("5", 0)])
    assert picker.weights == {"3": 75, "4": 25}


def test_the_guard_judges_only_a_full_window() -> None:
    now = [0.0]
    watch = GuardWatch(RouteGuard(max_error_rate=0.1, window_s=10, min_requests=5), lambda: now[0])
    assert [watch.observe(True, 1.0) for _ in range(4)] == [None] * 4
    assert watch.observe(True, 1.0) == "error rate 1.000 > 0.1 over 5 requests"
    now[0] = 100.0  # the window slid past every error
    assert [watch.observe(False, 1.0) for _ in range(8)] == [None] * 8


def test_the_guard_checks_the_p99() -> None:
    watch = GuardWatch(RouteGuard(max_p99_ms=50, window_s=60, min_requests=8), lambda: 0.0)
    reasons = [watch.observe(False, 10.0) for _ in range(20)]
    assert reasons == [None] * 20
    reasons = [watch.observe(False, 500.0) for _ in range(16)]
    assert any(r is not None and r.startswith("p99 500.000 ms > 50") for r in reasons)
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
