"""Text corpora for language models: loading documents with a fingerprint, and splitting them.

A corpus is a list of documents: the help topics of Python's own `pydoc_data` (the bundled
`pydoc_data` corpus, nothing to download), every text file under a folder (one document each), or
one text file (one document per blank-line-separated paragraph). Documents, not characters, are
divided between train, validation and test, so no document leaks across splits.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from maas.errors import DataError
from maas.train.data import DataSpec, SplitSpec

log = logging.getLogger(__name__)

TEXT_SUFFIXES: Final = (".txt", ".md", ".rst")
_FINGERPRINT_VERSION: Final = b"maas-text-v1"  # bump if what the fingerprint covers changes
_PARAGRAPH_BREAK: Final = re.compile(r"\n\s*\n")


@dataclass(frozen=True, eq=False)
class TextCorpus:
    """Documents of a text corpus and a fingerprint of their content."""

    source: str
    documents: tuple[str, ...]
    fingerprint: str

    @property
    def characters(self) -> int:
        """How many characters all documents hold together."""
        return sum(len(doc) for doc in self.documents)


@dataclass(frozen=True)
class TextSplits:
    """Documents for training, validation and test."""

    train: tuple[str, ...]
    validation: tuple[str, ...]
    test: tuple[str, ...]


def text_fingerprint(documents: tuple[str, ...]) -> str:
    """A stable "sha256:<hex>" over the documents, their order and their boundaries."""
    digest = hashlib.sha256(_FINGERPRINT_VERSION)
    for doc in documents:
        data = doc.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return f"sha256:{digest.hexdigest()}"


def _pydoc_topics() -> list[str]:
    from pydoc_data.topics import topics

    return [topics[key] for key in sorted(topics)]


def _read_text(path: Path, source: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f'text file "{source}": {path.name} is not UTF-8 ({err.reason})') from err
    except OSError as err:
        raise DataError(f'text file "{source}": cannot read {path.name} ({err.strerror})') from err


def _folder_documents(folder: Path, source: str) -> list[str]:
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES
    )
    if not files:
        raise DataError(f'text folder "{source}": no {", ".join(TEXT_SUFFIXES)} files in {folder}')
    return [_read_text(path, source) for path in files]


def _file_documents(path: Path, source: str) -> list[str]:
    if path.suffix.lower() not in TEXT_SUFFIXES:
        raise DataError(
            f'text file "{source}": unsupported type "{path.suffix or "(none)"}"; use '
            f"{', '.join(TEXT_SUFFIXES)} or a folder of them"
        )
    return _PARAGRAPH_BREAK.split(_read_text(path, source))


def load_text(spec: DataSpec, base_dir: Path | None = None) -> TextCorpus:
    """Load the text corpus a `data:` spec names (`pydoc_data`, a text file or a folder).

    Raises:
        DataError: the source is missing, unreadable, not UTF-8 or holds no text.
    """
    source = spec.source
    if source == "pydoc_data":
        documents = _pydoc_topics()
    else:
        path = Path(source).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.exists():
            raise DataError(
                f'text source "{source}": not found (looked for {path}); use pydoc_data, a '
                "text file or a folder of text files"
            )
        documents = (
            _folder_documents(path, source) if path.is_dir() else _file_documents(path, source)
        )
    kept = tuple(doc for doc in documents if doc.strip())
    if not kept:
        raise DataError(f'text source "{source}": no text in it')
    corpus = TextCorpus(source, kept, text_fingerprint(kept))
    log.info(
        "text.loaded",
        extra={"source": source, "documents": len(kept), "characters": corpus.characters},
    )
    return corpus


def _count(fraction: float, total: int, name: str, source: str) -> int:
    count = int(np.floor(fraction * total + 0.5))
    if fraction > 0 and count == 0:
        raise DataError(
            f'text "{source}": split.{name} = {fraction} of {total} documents leaves no {name} '
            f"documents; raise split.{name} or add documents"
        )
    return count


def split_text(corpus: TextCorpus, split: SplitSpec, seed: int) -> TextSplits:
    """Divide the documents into train, validation and test, the same way for the same seed.

    Raises:
        DataError: a nonzero fraction rounds to no documents, or none are left for training.
    """
    total = len(corpus.documents)
    n_test = _count(split.test, total, "test", corpus.source)
    n_val = _count(split.validation, total, "validation", corpus.source)
    if total - n_test - n_val < 1:
        raise DataError(
            f'text "{corpus.source}": split leaves none of {total} documents for training'
        )
    order = np.random.default_rng(seed).permutation(total)
    docs = corpus.documents
    return TextSplits(
        train=tuple(docs[i] for i in order[n_test + n_val :]),
        validation=tuple(docs[i] for i in order[n_test : n_test + n_val]),
        test=tuple(docs[i] for i in order[:n_test]),
    )
