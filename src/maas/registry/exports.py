"""Reading an export folder (what training writes) into the parts of a registration.

Layout: `model.onnx`, and `manifest.json` = {"name", "signature", "labels", "metrics", "lineage",
"files"}, where `files` lists further files in the same folder to keep with the version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maas.errors import InvalidInput
from maas.signature import Signature

MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class ExportBundle:
    """Everything read from one export folder, ready for `Registry.register`."""

    name: str
    artifact: bytes
    signature: Signature
    labels: tuple[str, ...]
    metrics: dict[str, float]
    lineage: dict[str, Any]
    files: dict[str, bytes]


def read_export(export_dir: Path) -> ExportBundle:
    """Read `export_dir` (model.onnx, manifest.json and the files the manifest lists).

    Raises:
        InvalidInput: a file is missing or the manifest is malformed (names the file and the key).
    """
    export_dir = Path(export_dir)
    manifest = _read_manifest(export_dir / MANIFEST_FILE)
    model_path = export_dir / MODEL_FILE
    if not model_path.is_file():
        raise InvalidInput(f"export folder {export_dir} has no {MODEL_FILE}")
    try:
        name = str(manifest["name"])
        signature = Signature.from_dict(manifest["signature"])
        labels = tuple(str(label) for label in manifest.get("labels", []))
        metrics = {str(k): float(v) for k, v in dict(manifest.get("metrics", {})).items()}
        lineage = dict(manifest.get("lineage", {}))
        file_names = [str(f) for f in manifest.get("files", [])]
    except (KeyError, TypeError, ValueError) as err:
        raise InvalidInput(f"{export_dir / MANIFEST_FILE} is malformed: {err!r}") from err
    return ExportBundle(
        name=name,
        artifact=model_path.read_bytes(),
        signature=signature,
        labels=labels,
        metrics=metrics,
        lineage=lineage,
        files={f: _read_listed_file(export_dir, f) for f in file_names},
    )


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise InvalidInput(f"export folder {path.parent} has no {MANIFEST_FILE}") from err
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidInput(f"{path} is not valid JSON: {err}") from err
    if not isinstance(doc, dict):
        raise InvalidInput(f"{path} must hold a JSON object, got {type(doc).__name__}")
    return doc


def _read_listed_file(export_dir: Path, name: str) -> bytes:
    # Only plain names: a manifest may not reach outside its own folder.
    if not name or Path(name).name != name or name in {MODEL_FILE, MANIFEST_FILE}:
        raise InvalidInput(f"{export_dir / MANIFEST_FILE} lists an invalid file name {name!r}")
    path = export_dir / name
    if not path.is_file():
        raise InvalidInput(
            f"{export_dir / MANIFEST_FILE} lists {name!r}, which is not in the folder"
        )
    return path.read_bytes()
