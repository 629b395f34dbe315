"""The GPT model: its cache reproduces full recomputation, and it trains and resumes exactly
through the shared loop."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from text_corpus import tiny_gpt_spec, write_corpus

from maas.causal_lm_pipeline import PreparedText, build_gpt, prepare_text
from maas.train.checkpoint import latest_epoch
from maas.train.gpt import GPT
from maas.train.loop import TrainOutcome, train_model
from maas.train.spec import GptOptions, Spec, parse_spec
from maas.train.text import split_text
from maas.train.tokenizer import train_tokenizer

OPTIONS = GptOptions(layers=2, heads=2, dim=32, context=16, vocab_size=300)


def test_cached_steps_equal_full_recomputation_and_padding_is_ignored() -> None:
    torch.manual_seed(0)
    model = GPT(300, OPTIONS).eval()
    ids = torch.randint(0, 300, (2, 10))
    with torch.no_grad():
        full = model(ids)
        logits, past = model.step(
            ids[:, :6], torch.ones(2, 6, dtype=torch.int64), torch.arange(6).expand(2, 6), None
        )
        for i in range(6, 10):
            mask = torch.ones(2, i + 1, dtype=torch.int64)
            step, past = model.step(ids[:, i : i + 1], mask, torch.full((2, 1), i), past)
            assert torch.allclose(step[:, 0], full[:, i], atol=1e-5)
        assert torch.allclose(logits, full[:, :6], atol=1e-5)
        # Two left-padding tokens, masked out and skipped by the positions, change nothing.
        padded = torch.cat([torch.tensor([[7, 9]]), ids[:1]], dim=1)
        mask = torch.tensor([[0, 0] + [1] * 10])
        positions = torch.clamp(torch.cumsum(mask, 1) - 1, min=0)
        left, _ = model.step(padded, mask, positions, None)
    assert torch.allclose(left[0, 2:], full[0], atol=1e-5)


def test_the_future_does_not_leak_into_earlier_logits() -> None:
    torch.manual_seed(1)
    model = GPT(300, OPTIONS).eval()
    ids = torch.randint(0, 300, (1, 12))
    changed = ids.clone()
    changed[0, 8:] = (changed[0, 8:] + 1) % 300
    with torch.no_grad():
        a, b = model(ids), model(changed)
    assert torch.equal(a[0, :8], b[0, :8])
    assert not torch.allclose(a[0, 8:], b[0, 8:])


class StopAt:
    """Raises KeyboardInterrupt after `steps` steps of epoch `epoch`."""

    def __init__(self, epoch: int, steps: int) -> None:
        self.epoch, self.steps, self.current, self.seen = epoch, steps, 0, 0

    def on_epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        self.current, self.seen = epoch, 0

    def on_step(self, loss: float, accuracy: float) -> None:
        self.seen += 1
        if self.current == self.epoch and self.seen == self.steps:
            raise KeyboardInterrupt

    def on_epoch_end(self, metrics: dict[str, float]) -> None:
        return None


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def spec(corpus: Path) -> Spec:
    # Dropout makes the global RNG part of what a resume has to restore.
    doc = tiny_gpt_spec(corpus, epochs=2)
    doc["model"]["options"]["dropout"] = 0.1
    return parse_spec(doc)


@pytest.fixture(scope="module")
def prepared(spec: Spec) -> PreparedText:
    return prepare_text(spec, None)


def run(
    spec: Spec, prep: PreparedText, ckpt: Path, resume: bool = False, observer: object = None
) -> TrainOutcome:
    return train_model(
        build_gpt(spec, prep.tokenizer.get_vocab_size()),
        prep.splits,
        spec.train,
        seed=spec.seed,
        checkpoint_dir=ckpt,
        spec_hash=spec.fingerprint(),
        resume=resume,
        observer=observer,  # type: ignore[arg-type]
    )


@pytest.mark.slow
def test_tiny_gpt_learns_and_resumes_exactly(
    spec: Spec, prepared: PreparedText, tmp_path: Path
) -> None:
    straight = run(spec, prepared, tmp_path / "straight")
    losses = [h["validation_loss"] for h in straight.history]
    assert losses[-1] < losses[0] < 5.9  # below uniform guessing: ln(384) = 5.95
    ckpt = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        run(spec, prepared, ckpt, observer=StopAt(epoch=2, steps=2))
    assert latest_epoch(ckpt) == 1
    resumed = run(spec, prepared, ckpt, resume=True)
    assert resumed.resumed_from == 1
    straight_state, resumed_state = straight.model.state_dict(), resumed.model.state_dict()
    for key, value in straight_state.items():
        assert torch.equal(value, resumed_state[key]), key
    assert [h["validation_loss"] for h in resumed.history] == losses


def test_the_tokenizer_is_learnt_from_the_training_documents_only(
    spec: Spec, prepared: PreparedText
) -> None:
    text = split_text(prepared.corpus, spec.data.split, spec.seed)
    vocab_size = spec.model.gpt().vocab_size
    assert prepared.documents == {"train": 10, "validation": 2, "test": 2}
    assert prepared.tokenizer.to_str() == train_tokenizer(text.train, vocab_size).to_str()
    everything = train_tokenizer(prepared.corpus.documents, vocab_size)
    assert prepared.tokenizer.to_str() != everything.to_str()
