"""Small text corpora for language-model tests, written from Python's own help topics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TOPICS = 14  # enough documents for three splits, few enough that training takes seconds


def write_corpus(folder: Path, topics: int = TOPICS) -> Path:
    """Write the first `topics` pydoc help topics as one .txt file each into `folder`."""
    from pydoc_data.topics import topics as all_topics

    folder.mkdir(parents=True, exist_ok=True)
    for key in sorted(all_topics)[:topics]:
        (folder / f"{key}.txt").write_text(all_topics[key], encoding="utf-8")
    return folder


def tiny_gpt_spec(source: Path, **train: Any) -> dict[str, Any]:
    """A spec for a 1-layer GPT (dim 32, context 32) that trains in seconds on `source`."""
    return {
        "name": "tiny-lm",
        "seed": 5,
        "data": {"source": str(source), "split": {"validation": 0.15, "test": 0.15}},
        "model": {
            "kind": "gpt",
            "options": {"layers": 1, "heads": 2, "dim": 32, "context": 32, "vocab_size": 384},
        },
        "train": {"optimizer": "adamw", "lr": 0.01, "epochs": 2, "batch_size": 32} | train,
    }
