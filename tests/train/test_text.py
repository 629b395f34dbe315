"""Text corpora split by documents; the BPE tokenizer learns from the training split only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from text_corpus import write_corpus
from tokenizers import Tokenizer

from maas.errors import DataError
from maas.train.data import DataSpec, SplitSpec
from maas.train.text import load_text, split_text
from maas.train.tokenizer import (
    END_OF_TEXT,
    token_splits,
    token_stream,
    train_tokenizer,
    windows,
)


def test_pydoc_data_is_a_bundled_corpus() -> None:
    from pydoc_data.topics import topics

    corpus = load_text(DataSpec(source="pydoc_data"))
    assert len(corpus.documents) == len(topics)
    assert corpus.documents[0] == topics[sorted(topics)[0]]
    assert corpus.fingerprint.startswith("sha256:")


def test_folder_file_and_errors(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "docs", topics=4)
    (folder / "ignored.bin").write_bytes(b"\xff\xfe")
    from_folder = load_text(DataSpec(source="docs"), base_dir=tmp_path)
    assert len(from_folder.documents) == 4
    single = tmp_path / "one.txt"
    single.write_text("first paragraph\nstill first\n\n\nsecond one\n  \n\nthird")
    assert load_text(DataSpec(source=str(single))).documents == (
        "first paragraph\nstill first",
        "second one",
        "third",
    )
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9")
    with pytest.raises(DataError, match=r"bad\.txt is not UTF-8"):
        load_text(DataSpec(source="bad.txt"), base_dir=tmp_path)
    with pytest.raises(DataError, match="not found"):
        load_text(DataSpec(source="missing/"), base_dir=tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no \.txt, \.md, \.rst files"):
        load_text(DataSpec(source="empty"), base_dir=tmp_path)


def test_split_is_by_document_disjoint_and_seeded(tmp_path: Path) -> None:
    corpus = load_text(DataSpec(source=str(write_corpus(tmp_path / "c", topics=20))))
    split = SplitSpec(validation=0.1, test=0.2)
    first = split_text(corpus, split, seed=3)
    assert (len(first.train), len(first.validation), len(first.test)) == (14, 2, 4)
    assert sorted(first.train + first.validation + first.test) == sorted(corpus.documents)
    assert split_text(corpus, split, seed=3) == first
    assert split_text(corpus, split, seed=4) != first
    with pytest.raises(DataError, match="leaves no validation documents"):
        split_text(corpus, SplitSpec(validation=0.01, test=0.2), seed=3)


def test_tokenizer_learns_from_the_training_split_only() -> None:
    train = ["the zebra grazes; " * 40, "a zebra, another zebra. " * 40]
    tokenizer = train_tokenizer(train, vocab_size=320)  # "quokka" is only in held-out text
    vocab = tokenizer.get_vocab()
    assert "Ġzebra" in vocab  # a frequent training word became one token ("Ġ" is the space)
    assert not any("quokka" in token for token in vocab)
    assert len(tokenizer.encode(" quokka").ids) > 1
    assert tokenizer.token_to_id(END_OF_TEXT) == 0


def test_byte_level_tokenizer_round_trips_any_text_and_is_reproducible() -> None:
    docs = ["def f(x):\n    return x ** 2\n" * 20, "naïve café — 東京 🙂 " * 10]
    tokenizer = train_tokenizer(docs, vocab_size=300)
    unseen = "\u0295\u2022\u1d25\u2022 unseen \u2713 text\twith tabs\n"
    assert tokenizer.decode(tokenizer.encode(unseen).ids) == unseen
    again = Tokenizer.from_str(tokenizer.to_str())
    assert again.encode(unseen).ids == tokenizer.encode(unseen).ids
    assert train_tokenizer(docs, vocab_size=300).to_str() == tokenizer.to_str()


def test_windows_shift_targets_by_one_and_end_documents(tmp_path: Path) -> None:
    tokenizer = train_tokenizer(["abc abd abe " * 30], vocab_size=300)
    stream = token_stream(tokenizer, ["abc abd", "abe"])
    eos = tokenizer.token_to_id(END_OF_TEXT)
    assert list(stream).count(eos) == 2
    assert stream[-1] == eos
    x, y = windows(np.arange(10), 3, "train")
    assert x.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert y.tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    with pytest.raises(DataError, match="the validation split has 3 tokens"):
        windows(np.arange(3), 8, "validation")


def test_token_splits_cover_each_split(tmp_path: Path) -> None:
    corpus = load_text(DataSpec(source=str(write_corpus(tmp_path / "c"))))
    text = split_text(corpus, SplitSpec(), seed=0)
    tokenizer = train_tokenizer(text.train, vocab_size=384)
    splits = token_splits(tokenizer, text, context=16)
    for x, y in ((splits.train_x, splits.train_y), (splits.validation_x, splits.validation_y)):
        assert x.dtype == np.int64
        assert x.shape[1] == 16
        assert np.array_equal(x[:, 1:], y[:, :-1])
    assert len(splits.test_x) > 0
