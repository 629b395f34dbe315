"""Byte-level BPE tokenizers trained on a corpus' training split, and token windows for training.

The tokenizer is a Hugging Face `tokenizers` object: it is stored with the model version as JSON
(`Tokenizer.to_str()`), which any `tokenizers` install (torch-free) reads back. Byte-level means
every string can be encoded, whatever its characters. `<|endoftext|>` ends every document; it is
the one special token and the model's end-of-sequence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from maas.errors import DataError
from maas.train.data import Splits
from maas.train.text import TextSplits

END_OF_TEXT: Final = "<|endoftext|>"


def train_tokenizer(documents: Sequence[str], vocab_size: int) -> Tokenizer:
    """A byte-level BPE tokenizer with at most `vocab_size` tokens, learnt from `documents`."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[END_OF_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(documents, trainer=trainer)
    return tokenizer


def end_of_text_id(tokenizer: Tokenizer) -> int:
    """The id of `<|endoftext|>` in `tokenizer`."""
    token_id = tokenizer.token_to_id(END_OF_TEXT)
    if token_id is None:
        raise DataError(f"the tokenizer has no {END_OF_TEXT} token")
    return int(token_id)


def token_stream(tokenizer: Tokenizer, documents: Sequence[str]) -> np.ndarray:
    """All documents as one int64 token sequence, each followed by `<|endoftext|>`."""
    eos = end_of_text_id(tokenizer)
    parts: list[int] = []
    for encoding in tokenizer.encode_batch(list(documents)):
        parts.extend(encoding.ids)
        parts.append(eos)
    return np.asarray(parts, dtype=np.int64)


def windows(stream: np.ndarray, context: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Cut a token stream into non-overlapping windows: inputs [N, context] and next tokens.

    Raises:
        DataError: the stream is shorter than one window (`name` says which split).
    """
    count = (len(stream) - 1) // context
    if count < 1:
        raise DataError(
            f"the {name} split has {len(stream)} tokens, fewer than one window of "
            f"{context + 1}; add text, raise split.{name} or lower model.options.context"
        )
    used = count * context
    x = stream[:used].reshape(count, context)
    y = stream[1 : used + 1].reshape(count, context)
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def token_splits(tokenizer: Tokenizer, text: TextSplits, context: int) -> Splits:
    """Train, validation and test windows of `context` tokens (targets shifted by one)."""
    train_x, train_y = windows(token_stream(tokenizer, text.train), context, "train")
    val_x, val_y = windows(token_stream(tokenizer, text.validation), context, "validation")
    if text.test:
        test_x, test_y = windows(token_stream(tokenizer, text.test), context, "test")
    else:
        test_x = test_y = np.zeros((0, context), dtype=np.int64)
    return Splits(train_x, train_y, val_x, val_y, test_x, test_y)
