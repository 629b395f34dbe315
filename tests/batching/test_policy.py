"""`BatchPolicy` validation and its target sizes."""

from __future__ import annotations

import pytest

from maas.batching.policy import BatchPolicy
from maas.errors import InvalidInput


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_batch_size": 0}, "max_batch_size must be between 1 and 4096, got 0"),
        ({"max_queue_delay_us": -1}, "max_queue_delay_us"),
        ({"instances": 0}, "instances"),
        ({"max_queue_size": 0}, "max_queue_size"),
        ({"max_batch_size": 8, "preferred_batch_sizes": (16,)}, "preferred_batch_sizes"),
        ({"preferred_batch_sizes": (8, 4)}, "increasing"),
    ],
)
def test_bad_policies_name_the_setting(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        BatchPolicy(**kwargs)  # type: ignore[arg-type]


def test_target_size_is_the_next_preferred_size_else_the_max() -> None:
    policy = BatchPolicy(max_batch_size=32, preferred_batch_sizes=(4, 16))
    assert [policy.target_size(n) for n in (1, 4, 5, 16, 17)] == [4, 4, 16, 16, 32]
    assert BatchPolicy(max_batch_size=8).target_size(3) == 8
