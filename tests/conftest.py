"""Fixtures shared by the whole suite: an isolated MAAS_HOME and the settings that point at it."""

from __future__ import annotations

from pathlib import Path

import pytest

from maas.config import Settings, load_settings


@pytest.fixture
def maas_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh MAAS_HOME for one test (registry, artifacts and runs all live under it)."""
    home = tmp_path / "maas-home"
    monkeypatch.setenv("MAAS_HOME", str(home))
    return home


@pytest.fixture
def settings(maas_home: Path) -> Settings:
    """Settings reading the isolated MAAS_HOME."""
    return load_settings(home=maas_home)
