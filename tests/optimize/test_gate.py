"""The accuracy gate and the choice between candidates, on figures given directly."""

from __future__ import annotations

import pytest

from maas.errors import ErrorCode
from maas.optimize.candidates import Measured, choose, judge
from maas.optimize.gate import AccuracyGateFailed, check_accuracy, require_accuracy


def test_gate_passes_within_the_allowed_drop_and_fails_beyond_it() -> None:
    assert check_accuracy(0.95, 0.946, 0.5).passed
    assert check_accuracy(0.95, 0.95, 0.0).passed
    failed = check_accuracy(0.95, 0.94, 0.5)
    assert not failed.passed
    assert failed.drop_points == pytest.approx(1.0)


def test_refusal_names_both_accuracies_and_is_not_a_client_error() -> None:
    with pytest.raises(AccuracyGateFailed) as info:
        require_accuracy(check_accuracy(0.9512, 0.9012, 0.5), "int8 of m@1")
    message = str(info.value)
    assert "90.12%" in message
    assert "95.12%" in message
    assert "int8 of m@1" in message
    assert info.value.code is ErrorCode.INTERNAL


def _m(variant: str, acc: float, size: int, b1: float, b32: float) -> Measured:
    return Measured(variant, "int8", b"x" * size, acc, latency_ms_b1=b1, latency_ms_b32=b32)


PARENT = Measured("fp32", "fp32", b"x" * 4000, 0.95, latency_ms_b1=1.0, latency_ms_b32=10.0)


def test_latency_objective_picks_the_fastest_passing_candidate() -> None:
    fast_bad = _m("int8-partial", 0.90, 1500, 0.2, 2.0)  # fastest, fails the gate
    fast = _m("int8", 0.95, 1000, 0.5, 5.0)
    slow_small = _m("int8-compact", 0.95, 900, 0.9, 9.5)
    decision = choose(PARENT, judge(PARENT, [fast_bad, fast, slow_small], 0.5), "latency")
    assert decision.winner is not None
    assert decision.winner.candidate.variant == "int8"
    assert decision.winner.speedup == pytest.approx(2.0)
    assert decision.reason.startswith("int8 wins on latency: 2.00x faster")


def test_latency_objective_keeps_fp32_when_int8_is_slower_and_says_why() -> None:
    slower = _m("int8", 0.95, 1000, 1.3, 12.0)
    decision = choose(PARENT, judge(PARENT, [slower], 0.5), "latency")
    assert decision.winner is None
    assert decision.reason.startswith("keep fp32: int8 is not faster on this machine")
    assert "--objective size" in decision.reason


def test_size_objective_picks_the_smallest_passing_candidate() -> None:
    tiny_bad = _m("int8-dynamic", 0.80, 500, 1.0, 10.0)
    small = _m("int8-compact", 0.949, 900, 1.3, 12.0)
    larger = _m("int8", 0.95, 1000, 0.5, 5.0)
    decision = choose(PARENT, judge(PARENT, [tiny_bad, small, larger], 0.5), "size")
    assert decision.winner is not None
    assert decision.winner.candidate.variant == "int8-compact"
    assert decision.winner.size_ratio == pytest.approx(4000 / 900)


def test_no_passing_candidate_keeps_fp32() -> None:
    decision = choose(PARENT, judge(PARENT, [_m("int8", 0.5, 10, 0.1, 1.0)], 0.5), "size")
    assert decision.winner is None
    assert "no candidate passes the accuracy gate" in decision.reason
