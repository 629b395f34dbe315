"""Content-addressed artifact files: bytes stored once under their sha256 digest, verified on read.

Layout: `<root>/sha256/<first two hex digits>/<digest>`. A file is written to a temporary name in
the same folder and moved into place with `os.replace`, so a reader never sees a partial file and a
crash leaves at most a stray temporary file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from maas.errors import IntegrityError

log = logging.getLogger(__name__)

_DIGEST_RE = re.compile(r"[0-9a-f]{64}")


def sha256_hex(data: bytes) -> str:
    """The sha256 digest of `data` as 64 lowercase hex digits."""
    return hashlib.sha256(data).hexdigest()


class ArtifactStore:
    """Artifact bytes on disk, addressed by their sha256 digest.

    Args:
        root: the folder that holds the `sha256/` tree (created when missing).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, digest: str) -> Path:
        """Where the artifact with `digest` lives (whether or not it exists)."""
        if not _DIGEST_RE.fullmatch(digest):
            raise IntegrityError(f"not a sha256 hex digest: {digest!r}")
        return self.root / "sha256" / digest[:2] / digest

    def write(self, data: bytes) -> str:
        """Store `data` (once: an existing intact copy is kept) and return its digest."""
        digest = sha256_hex(data)
        target = self.path(digest)
        if target.is_file() and target.stat().st_size == len(data):
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as tmp:
                tmp.write(data)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        log.debug("artifact.written", extra={"digest": digest, "size_bytes": len(data)})
        return digest

    def read(self, digest: str, owner: str) -> bytes:
        """Read the artifact with `digest`, checking its bytes against the digest.

        Args:
            digest: the sha256 hex digest recorded for the artifact.
            owner: who the bytes belong to, for error messages (`"iris@3 model.onnx"`).

        Raises:
            IntegrityError: the file is missing or its bytes do not hash to `digest`.
        """
        target = self.path(digest)
        try:
            data = target.read_bytes()
        except FileNotFoundError as err:
            raise IntegrityError(f"artifact of {owner} is missing (sha256 {digest})") from err
        actual = sha256_hex(data)
        if actual != digest:
            raise IntegrityError(
                f"artifact of {owner} is corrupt: recorded sha256 {digest}, file hashes to {actual}"
            )
        return data

    def exists(self, digest: str) -> bool:
        """Whether a file for `digest` is present (its content is not checked)."""
        return self.path(digest).is_file()

    def delete(self, digest: str) -> None:
        """Remove the artifact file for `digest` if present."""
        with contextlib.suppress(FileNotFoundError):
            self.path(digest).unlink()
        log.debug("artifact.deleted", extra={"digest": digest})

    @contextlib.contextmanager
    def lock(self, *, exclusive: bool) -> Iterator[None]:
        """Hold the store's lock: shared while adding references, exclusive while collecting.

        A registration holds it shared from writing its files until its rows are committed; a
        deletion holds it exclusively while it decides which files no version uses any more, so it
        never removes a file that a registration in flight is about to reference.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
