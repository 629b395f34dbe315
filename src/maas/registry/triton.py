"""Writing registered versions as a Triton model repository, so a team can move to Triton or
KServe without retraining.

Layout (one folder per model, one numbered folder per version)::

    DIR/digits/config.pbtxt
    DIR/digits/labels.txt          (classifiers only)
    DIR/digits/1/model.onnx
    DIR/digits/3/model.onnx
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from maas.errors import Conflict, InvalidInput
from maas.registry.refs import parse_ref
from maas.signature import Signature, TensorSpec

if TYPE_CHECKING:
    from maas.registry.store import Registry
    from maas.registry.versions import ModelVersion

PLATFORM = "onnxruntime_onnx"
DEFAULT_MAX_BATCH_SIZE = 32  # Triton's batcher limit in the written config; edit to taste
LABELS_FILE = "labels.txt"


@dataclass(frozen=True)
class ExportedModel:
    """One model written to the repository: its folder and the versions in it."""

    name: str
    path: Path
    versions: tuple[int, ...]


def export_repository(
    registry: Registry,
    out_dir: Path,
    refs: Sequence[str] = (),
    *,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
) -> list[ExportedModel]:
    """Write models as a Triton model repository under `out_dir`.

    Args:
        registry: where the versions come from (every artifact is digest-checked on read).
        out_dir: the repository folder (created; an existing model folder is refused).
        refs: `NAME` (every version) or `NAME@REF` (one version); empty: every model.
        max_batch_size: the `max_batch_size` of batchable models.

    Raises:
        InvalidInput: a malformed reference, or versions of one model with different signatures.
        Conflict: a model folder exists already.
        ModelNotFound: an unknown model or reference.
    """
    chosen: dict[str, dict[int, ModelVersion]] = {}
    for text in refs or [summary.name for summary in registry.list_models()]:
        parsed = parse_ref(text)
        found = chosen.setdefault(parsed.name, {})
        if "@" in text:
            mv = registry.get(parsed.name, parsed.ref)
            found[mv.version] = mv
        else:
            found.update({mv.version: mv for mv in registry.list_versions(parsed.name)})
    out_dir.mkdir(parents=True, exist_ok=True)
    return [
        _write_model(registry, out_dir, name, versions, max_batch_size)
        for name, versions in sorted(chosen.items())
    ]


def _write_model(
    registry: Registry,
    out_dir: Path,
    name: str,
    versions: dict[int, ModelVersion],
    max_batch_size: int,
) -> ExportedModel:
    folder = out_dir / name
    if folder.exists():
        raise Conflict(f"{folder} exists; export into an empty folder")
    newest = versions[max(versions)]
    for mv in versions.values():
        if mv.signature != newest.signature:
            raise InvalidInput(
                f"{mv.ref} and {newest.ref} have different signatures; one Triton config "
                f"cannot describe both: export them one at a time ({name}@N)"
            )
    folder.mkdir(parents=True)
    for number, mv in sorted(versions.items()):
        (folder / str(number)).mkdir()
        _write_atomically(folder / str(number) / "model.onnx", registry.read_artifact(mv))
    if newest.labels:
        (folder / LABELS_FILE).write_text("\n".join(newest.labels) + "\n")
    config = model_config(newest, sorted(versions), max_batch_size)
    (folder / "config.pbtxt").write_text(config)
    return ExportedModel(name, folder, tuple(sorted(versions)))


def model_config(mv: ModelVersion, versions: Sequence[int], max_batch_size: int) -> str:
    """The `config.pbtxt` (protobuf text format) of a model whose newest version is `mv`."""
    signature = mv.signature
    batchable = is_batchable(signature)
    label_output = _label_output(signature, mv.labels) if mv.labels else None
    lines = [
        f"name: {_quote(mv.name)}",
        f"platform: {_quote(PLATFORM)}",
        f"max_batch_size: {max_batch_size if batchable else 0}",
        "version_policy: { specific: { versions: [ "
        + ", ".join(str(v) for v in versions)
        + " ] } }",
        "input [",
        ",\n".join(_tensor(spec, batchable, None) for spec in signature.inputs),
        "]",
        "output [",
        ",\n".join(
            _tensor(spec, batchable, LABELS_FILE if spec.name == label_output else None)
            for spec in signature.outputs
        ),
        "]",
    ]
    if batchable:
        lines.append("dynamic_batching { }")
    return "\n".join(lines) + "\n"


def is_batchable(signature: Signature) -> bool:
    """Every tensor has a dynamic first (batch) dimension."""
    return all(t.shape and t.shape[0] == -1 for t in (*signature.inputs, *signature.outputs))


def _tensor(spec: TensorSpec, batchable: bool, label_file: str | None) -> str:
    dims = list(spec.shape[1:] if batchable else spec.shape)
    data_type = "TYPE_STRING" if spec.datatype == "BYTES" else f"TYPE_{spec.datatype}"
    fields = [f"    name: {_quote(spec.name)}", f"    data_type: {data_type}"]
    if dims:
        fields.append(f"    dims: [ {', '.join(str(d) for d in dims)} ]")
    else:  # a batch-only tensor: Triton wants one dim, reshaped away
        fields += ["    dims: [ 1 ]", "    reshape: { shape: [ ] }"]
    if label_file is not None:
        fields.append(f"    label_filename: {_quote(label_file)}")
    return "  {\n" + "\n".join(fields) + "\n  }"


def _label_output(signature: Signature, labels: Sequence[str]) -> str | None:
    """The first output with one column per label (Triton's classification extension)."""
    for spec in signature.outputs:
        if spec.shape and spec.shape[-1] == len(labels):
            return spec.name
    return None


def _quote(text: str) -> str:
    return json.dumps(text)  # protobuf text strings use the same escapes for what we write


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_suffix(".partial")
    partial.write_bytes(data)
    os.replace(partial, path)
