"""`pick_token` and `SamplingParams`: greedy, nucleus cut, seeds, parameter limits."""

from __future__ import annotations

import numpy as np
import pytest

from maas.errors import InvalidInput
from maas.generate.sampling import SamplingParams, pick_token

pytestmark = pytest.mark.timeout(30)

LOGITS = np.log(np.array([0.5, 0.3, 0.15, 0.05], dtype=np.float32))


def test_temperature_zero_is_greedy() -> None:
    params = SamplingParams(max_tokens=1, temperature=0.0)
    assert pick_token(LOGITS, params, params.generator()) == 0


def test_top_p_keeps_only_the_nucleus() -> None:
    params = SamplingParams(max_tokens=1, temperature=1.0, top_p=0.7, seed=3)
    rng = params.generator()
    picked = {pick_token(LOGITS, params, rng) for _ in range(300)}
    assert picked == {0, 1}  # 0.5 + 0.3 reaches 0.7; 2 and 3 are cut


def test_without_top_p_every_token_can_come() -> None:
    params = SamplingParams(max_tokens=1, temperature=1.0, seed=3)
    rng = params.generator()
    assert {pick_token(LOGITS, params, rng) for _ in range(500)} == {0, 1, 2, 3}


def test_a_seed_repeats_the_draws() -> None:
    params = SamplingParams(max_tokens=1, temperature=1.0, seed=42)
    draws = [
        [pick_token(LOGITS, params, rng) for _ in range(50)]
        for rng in (params.generator(), params.generator())
    ]
    assert draws[0] == draws[1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": 2.5}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"stop": ("a", "b", "c", "d", "e")}, "at most 4 stop strings"),
        ({"stop": ("",)}, "stop string"),
        ({"stop": ("x" * 300,)}, "stop string"),
        ({"seed": -1}, "seed"),
    ],
)
def test_parameters_out_of_range_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        SamplingParams(**{"max_tokens": 5, **kwargs})  # type: ignore[arg-type]
