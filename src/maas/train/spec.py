"""The training spec: one YAML document that says what to train, on what, and how.

Every section is a strict pydantic model: an unknown key or a wrong type is refused before any work
starts, with the key's path in the message (`train.epochs: Input should be a valid integer`).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from maas.errors import SpecError
from maas.train.data import BUNDLED_DATASETS, DataSpec

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
BUILTIN_KINDS = ("mlp", "cnn", "gpt")
TEXT_DATASETS = ("pydoc_data",)  # bundled text corpora (see maas.train.text)
TABLE_SUFFIXES = (".csv", ".parquet", ".pq", ".npz")


class Strict(BaseModel):
    """Base of every spec section: unknown keys are errors, values are validated strictly."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class GptOptions(Strict):
    """`model.options:` of `kind: gpt`, a decoder-only transformer over BPE tokens."""

    layers: int = Field(ge=1, le=64)
    heads: int = Field(ge=1, le=64)
    dim: int = Field(ge=8, le=8192)
    context: int = Field(ge=8, le=8192)
    vocab_size: int = Field(default=2048, ge=300, le=65_536)  # 256 bytes + merges + <|endoftext|>
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> GptOptions:
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not a multiple of heads {self.heads}")
        return self


class ModelSpec(Strict):
    """`model:` the architecture: `mlp`, `cnn`, `gpt` or `package.module:build_function`."""

    kind: str = "mlp"
    hidden_sizes: list[int] = Field(default_factory=lambda: [128, 64], min_length=1)
    activation: Literal["relu", "gelu", "tanh", "silu"] = "relu"
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    channels: tuple[int, int] = (32, 64)
    kernel_size: int = Field(default=3, ge=1, le=11)
    dense_size: int = Field(default=128, ge=1)
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind in BUILTIN_KINDS or re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", kind):
            return kind
        raise ValueError(
            f'unknown model kind "{kind}"; use mlp, cnn, gpt or package.module:build_function'
        )

    @field_validator("options")
    @classmethod
    def _gpt_options(cls, options: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if info.data.get("kind") == "gpt":
            try:
                GptOptions.model_validate(options)
            except ValidationError as err:
                raise ValueError(f"kind gpt: {_format_errors(err)}") from None
        return options

    def gpt(self) -> GptOptions:
        """The options of a `kind: gpt` model, validated."""
        return GptOptions.model_validate(self.options)


class ScheduleSpec(Strict):
    """`train.schedule:` how the learning rate moves between epochs."""

    kind: Literal["none", "step", "cosine", "exponential"] = "none"
    step_size: int = Field(default=5, ge=1)
    gamma: float = Field(default=0.5, gt=0.0, le=1.0)


class EarlyStoppingSpec(Strict):
    """`train.early_stopping:` stop when validation loss has not improved for `patience` epochs."""

    patience: int = Field(default=3, ge=1)
    min_delta: float = Field(default=0.0, ge=0.0)


class TrainSpec(Strict):
    """`train:` optimizer, learning rate, schedule, epochs, batch size, early stopping."""

    optimizer: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = Field(default=1e-3, gt=0.0, le=10.0)
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(default=0.0, ge=0.0)
    epochs: int = Field(default=15, ge=1, le=10_000)
    batch_size: int = Field(default=64, ge=1, le=65_536)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    early_stopping: EarlyStoppingSpec | None = None
    threads: int = Field(default=1, ge=1, le=256)


class ValidateSpec(Strict):
    """`validate:` the checks an exported model must pass before it may be registered."""

    parity_atol: float = Field(default=1e-4, gt=0.0)
    parity_samples: int = Field(default=256, ge=1)
    min_test_accuracy: float | None = Field(default=None, ge=0.0, le=1.0)
    max_validation_perplexity: float | None = Field(default=None, ge=1.0)  # gpt: the gate


class ExportSpec(Strict):
    """`export:` how the model is serialized to ONNX."""

    opset: int = Field(default=18, ge=18, le=23)


class Spec(Strict):
    """A whole training spec."""

    name: str
    seed: int = 0
    description: str = ""
    data: DataSpec
    model: ModelSpec = Field(default_factory=ModelSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    validate_: ValidateSpec = Field(default_factory=ValidateSpec, alias="validate")
    export: ExportSpec = Field(default_factory=ExportSpec)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        if not NAME_PATTERN.match(name):
            raise ValueError(
                f'"{name}" is not a valid model name; use lowercase letters, digits, . _ or -'
            )
        return name

    @field_validator("model")
    @classmethod
    def _data_fits_model(cls, model: ModelSpec, info: ValidationInfo) -> ModelSpec:
        data = info.data.get("data")
        if data is None:
            return model
        source = data.source
        is_table = source in BUNDLED_DATASETS or Path(source).suffix.lower() in TABLE_SUFFIXES
        if model.kind == "gpt" and is_table:
            raise ValueError(
                f'kind gpt trains on text, but data.source "{source}" is a table; use '
                f"{', '.join(TEXT_DATASETS)}, a .txt file or a folder of text files"
            )
        if model.kind != "gpt" and source in TEXT_DATASETS:
            raise ValueError(f'data.source "{source}" is a text corpus: use kind gpt')
        return model

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain JSON-ready data, every default filled in."""
        return self.model_dump(mode="json", by_alias=True)

    def fingerprint(self) -> str:
        """A short stable hash of the full spec, naming its training run."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _format_errors(err: ValidationError) -> str:
    parts = []
    for item in err.errors():
        path = ".".join(str(p) for p in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            parts.append(f"{path}: unknown key")
        elif item["type"] == "missing":
            parts.append(f"{path}: required key missing")
        else:
            msg = item["msg"].removeprefix("Value error, ")
            got = item.get("input")
            # A whole section as "got" is noise; the message names what is wrong in it.
            parts.append(f"{path}: {msg}" + ("" if isinstance(got, dict) else f" (got {got!r})"))
    return "; ".join(parts)


def parse_spec(data: Any, origin: str = "spec") -> Spec:
    """Validate spec data (already parsed YAML/JSON); raise SpecError naming each bad key's path."""
    if not isinstance(data, dict):
        raise SpecError(f"{origin}: a spec must be a mapping with at least `name` and `data`")
    try:
        return Spec.model_validate(data)
    except ValidationError as err:
        raise SpecError(f"{origin}: {_format_errors(err)}") from err


def load_spec(path: Path) -> Spec:
    """Read and validate a YAML spec file."""
    try:
        text = path.read_text()
    except OSError as err:
        raise SpecError(f'spec "{path}": cannot read it ({err.strerror})') from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SpecError(f'spec "{path}": not valid YAML ({err})'.replace("\n", " ")) from err
    return parse_spec(data, origin=f'spec "{path}"')
