"""Generation fixtures: the tiny causal LM (built once per run) and a loaded step model."""

from __future__ import annotations

import pytest
from lm_models import TinyLm, build_tiny_lm

from maas.generate.model import CausalLm, LmConfig
from maas.generate.tokenizer import TextTokenizer
from maas.runtime.runner import ModelRunner


@pytest.fixture(scope="session")
def tiny_lm() -> TinyLm:
    return build_tiny_lm()


@pytest.fixture(scope="session")
def lm_config(tiny_lm: TinyLm) -> LmConfig:
    return LmConfig.from_dict(tiny_lm.config)


@pytest.fixture(scope="session")
def causal_lm(tiny_lm: TinyLm, lm_config: LmConfig) -> CausalLm:
    runner = ModelRunner(tiny_lm.model_bytes, name="tiny:1")
    runner.load()
    return CausalLm(runner, lm_config)


@pytest.fixture(scope="session")
def tokenizer(tiny_lm: TinyLm, lm_config: LmConfig) -> TextTokenizer:
    return TextTokenizer(tiny_lm.tokenizer_json, lm_config)
