"""`Crowd`: the recent peak of requests in flight together."""

from __future__ import annotations

from maas.batching.crowd import Crowd


def test_a_lone_client_never_makes_a_crowd() -> None:
    crowd = Crowd()
    for _ in range(100):
        crowd.record(1)
    assert crowd.peak == 1.0


def test_the_peak_follows_the_largest_crowd_then_fades() -> None:
    crowd = Crowd()
    for met in (2, 9, 3):
        crowd.record(met)
    assert 8.0 < crowd.peak < 9.0  # the 9 is remembered, fading
    for _ in range(60):
        crowd.record(1)
    assert crowd.peak < 1.5  # the crowd has left: back to a lone client
