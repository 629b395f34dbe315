"""The data layer: bundled datasets, user files, fingerprints, splits, scaling and its errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from pydantic import ValidationError

from maas.errors import DataError, InvalidInput, ShapeMismatch
from maas.train.data import (
    Dataset,
    DataSpec,
    Scaler,
    SplitSpec,
    dataset_fingerprint,
    fit_scaler,
    load_dataset,
    split_dataset,
)


def write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def make_dataset(targets: list[int], labels: tuple[str, ...] | None = None) -> Dataset:
    """A dataset whose first feature is the row id, so splits can be traced back to rows."""
    y = np.array(targets, dtype=np.int64)
    ids = np.arange(len(y), dtype=np.float32)
    x = np.stack([ids, ids % 7, y.astype(np.float32)], axis=1)
    names = labels or tuple(str(i) for i in range(int(y.max()) + 1))
    return Dataset(
        source="made",
        features=x,
        targets=y,
        labels=names,
        feature_names=("id", "mod7", "class"),
        image_shape=None,
        fingerprint=dataset_fingerprint(x, y, names),
    )


# --- bundled datasets -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rows", "features", "labels", "image_shape"),
    [
        ("digits", 1797, 64, tuple(str(i) for i in range(10)), (1, 8, 8)),
        ("iris", 150, 4, ("setosa", "versicolor", "virginica"), None),
        ("wine", 178, 13, ("class_0", "class_1", "class_2"), None),
        ("breast_cancer", 569, 30, ("malignant", "benign"), None),
    ],
)
def test_bundled_dataset_loads_with_shapes_and_labels(
    name: str, rows: int, features: int, labels: tuple[str, ...], image_shape: Any
) -> None:
    ds = load_dataset(DataSpec(source=name))
    assert ds.source == name
    assert ds.features.shape == (rows, features)
    assert ds.features.dtype == np.float32
    assert ds.targets.shape == (rows,)
    assert ds.targets.dtype == np.int64
    assert ds.labels == labels
    assert set(np.unique(ds.targets).tolist()) == set(range(len(labels)))
    assert len(ds.feature_names) == features
    assert ds.image_shape == image_shape
    assert ds.fingerprint.startswith("sha256:")
    assert len(ds.fingerprint) == len("sha256:") + 64


def test_digits_rows_are_8x8_images_in_c_order() -> None:
    ds = load_dataset(DataSpec(source="digits"))
    assert ds.image_shape == (1, 8, 8)
    image = ds.features[0].reshape(ds.image_shape)
    # The first digit is a 0: its centre column is blank while the ring around it is inked.
    assert ds.labels[ds.targets[0]] == "0"
    assert image[0, 4, 4] == 0.0
    assert image[0, 1, 3] > 0.0
    assert ds.feature_names[:2] == ("pixel_0_0", "pixel_0_1")


# --- fingerprints -----------------------------------------------------------------------------


def test_fingerprint_is_stable_across_loads_and_differs_between_datasets() -> None:
    first = load_dataset(DataSpec(source="iris"))
    second = load_dataset(DataSpec(source="iris"))
    wine = load_dataset(DataSpec(source="wine"))
    assert first.fingerprint == second.fingerprint
    assert first.fingerprint != wine.fingerprint
    recomputed = dataset_fingerprint(first.features.copy(), first.targets.copy(), first.labels)
    assert recomputed == first.fingerprint


def test_fingerprint_changes_when_content_changes(tmp_path: Path) -> None:
    path = write_text(tmp_path / "x.csv", "a,b,y\n1,2,u\n3,4,v\n5,6,u\n")
    spec = DataSpec(source=str(path), label="y")
    before = load_dataset(spec).fingerprint
    assert load_dataset(spec).fingerprint == before
    write_text(path, "a,b,y\n1,2,u\n3,4.5,v\n5,6,u\n")
    changed_cell = load_dataset(spec).fingerprint
    write_text(path, "a,b,y\n1,2,u\n3,4,v\n5,6,v\n")
    changed_label = load_dataset(spec).fingerprint
    assert len({before, changed_cell, changed_label}) == 3


def test_fingerprint_covers_class_names() -> None:
    x = np.zeros((2, 1), dtype=np.float32)
    y = np.array([0, 1], dtype=np.int64)
    assert dataset_fingerprint(x, y, ("a", "b")) != dataset_fingerprint(x, y, ("a", "c"))


# --- splits -----------------------------------------------------------------------------------


def row_ids(x: np.ndarray) -> list[int]:
    return x[:, 0].astype(np.int64).tolist()


def test_split_is_deterministic_per_seed() -> None:
    ds = load_dataset(DataSpec(source="iris"))
    split = SplitSpec()
    first, again, other = (split_dataset(ds, split, seed) for seed in (7, 7, 8))
    for field in ("train_x", "train_y", "validation_x", "validation_y", "test_x", "test_y"):
        assert np.array_equal(getattr(first, field), getattr(again, field))
    assert not np.array_equal(first.test_x, other.test_x)


@pytest.mark.parametrize("stratify", [True, False])
def test_split_is_disjoint_covers_all_rows_and_has_the_asked_sizes(stratify: bool) -> None:
    ds = make_dataset([0] * 60 + [1] * 30 + [2] * 10)
    splits = split_dataset(ds, SplitSpec(validation=0.2, test=0.1, stratify=stratify), seed=3)
    train, val, test = row_ids(splits.train_x), row_ids(splits.validation_x), row_ids(splits.test_x)
    assert (len(train), len(val), len(test)) == (70, 20, 10)
    assert sorted(train + val + test) == list(range(100))
    # Each row keeps its own target: the third feature is the class.
    for x, y in ((splits.train_x, splits.train_y), (splits.test_x, splits.test_y)):
        assert np.array_equal(x[:, 2].astype(np.int64), y)
    assert splits.is_stratified is stratify


def test_stratified_split_keeps_class_shares() -> None:
    ds = make_dataset([0] * 60 + [1] * 30 + [2] * 10)
    splits = split_dataset(ds, SplitSpec(validation=0.2, test=0.1), seed=11)
    assert np.bincount(splits.test_y).tolist() == [6, 3, 1]
    assert np.bincount(splits.validation_y).tolist() == [12, 6, 2]
    assert np.bincount(splits.train_y).tolist() == [42, 21, 7]


def test_iris_stratified_test_split_has_equal_classes() -> None:
    ds = load_dataset(DataSpec(source="iris"))
    splits = split_dataset(ds, SplitSpec(validation=0.2, test=0.2), seed=0)
    assert np.bincount(splits.test_y).tolist() == [10, 10, 10]
    assert np.bincount(splits.validation_y).tolist() == [10, 10, 10]


def test_class_too_small_to_stratify_falls_back_to_random_split() -> None:
    ds = make_dataset([0] * 20 + [1] * 2)
    splits = split_dataset(ds, SplitSpec(validation=0.2, test=0.2), seed=0)
    assert splits.is_stratified is False
    everything = row_ids(splits.train_x) + row_ids(splits.validation_x) + row_ids(splits.test_x)
    assert sorted(everything) == list(range(22))


def test_zero_fraction_gives_an_empty_split_with_the_right_width() -> None:
    ds = make_dataset([0, 1] * 10)
    splits = split_dataset(ds, SplitSpec(validation=0.0, test=0.25), seed=0)
    assert splits.validation_x.shape == (0, 3)
    assert splits.validation_y.shape == (0,)
    assert len(splits.test_y) == 5


@pytest.mark.parametrize(
    ("targets", "split", "message"),
    [
        ([0, 1, 0, 1], SplitSpec(validation=0.0, test=0.1), "leaves no test rows"),
        ([0, 1, 0, 1], SplitSpec(validation=0.1, test=0.25), "leaves no validation rows"),
        ([0, 1], SplitSpec(validation=0.4, test=0.4), "none of 2 rows for training"),
    ],
)
def test_split_fractions_that_leave_a_split_empty_are_refused(
    targets: list[int], split: SplitSpec, message: str
) -> None:
    ds = make_dataset(targets)
    with pytest.raises(DataError, match=message) as info:
        split_dataset(ds, split, seed=0)
    assert 'data "made"' in str(info.value)


@pytest.mark.parametrize("fields", [{"test": 0.5}, {"validation": -0.1}, {"shuffle": True}])
def test_split_spec_rejects_bad_fields(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SplitSpec(**fields)


def test_data_spec_rejects_unknown_keys_and_bad_image_size() -> None:
    with pytest.raises(ValidationError):
        DataSpec.model_validate({"source": "iris", "lable": "y"})
    with pytest.raises(ValidationError):
        DataSpec.model_validate({"source": "imgs", "image_size": [0, 8]})
    with pytest.raises(ValidationError):
        DataSpec.model_validate({"source": "x.csv", "features": []})
    spec = DataSpec.model_validate({"source": "imgs", "image_size": [8, 6]})
    assert spec.image_size == (8, 6)


# --- scaling ----------------------------------------------------------------------------------


def test_standard_scaler_uses_train_statistics_only() -> None:
    ds = load_dataset(DataSpec(source="wine"))
    splits = split_dataset(ds, SplitSpec(), seed=0)
    scaler = fit_scaler(splits.train_x, "standard")
    assert scaler.kind == "standard"
    assert scaler.offset.dtype == np.float32
    assert np.allclose(scaler.offset, splits.train_x.mean(axis=0), rtol=1e-5)
    assert not np.allclose(scaler.offset, ds.features.mean(axis=0), rtol=1e-5)
    scaled = scaler.transform(splits.train_x)
    assert scaled.dtype == np.float32
    assert np.allclose(scaled.mean(axis=0), 0.0, atol=1e-4)
    assert np.allclose(scaled.std(axis=0), 1.0, atol=1e-3)


def test_minmax_scaler_maps_train_into_unit_range() -> None:
    x = np.array([[1.0, 10.0], [3.0, 30.0], [2.0, 20.0]], dtype=np.float32)
    scaler = fit_scaler(x, "minmax")
    assert scaler.transform(x).tolist() == [[0.0, 0.0], [1.0, 1.0], [0.5, 0.5]]


def test_none_scaler_is_identity() -> None:
    x = np.array([[1.5, -2.0]], dtype=np.float32)
    assert np.array_equal(fit_scaler(x, "none").transform(x), x)


@pytest.mark.parametrize("kind", ["standard", "minmax"])
def test_constant_feature_gets_scale_one(kind: str) -> None:
    x = np.array([[5.0, 1.0], [5.0, 2.0], [5.0, 4.0]], dtype=np.float32)
    scaler = fit_scaler(x, kind)
    assert scaler.scale[0] == 1.0
    assert scaler.offset[0] == 5.0
    out = scaler.transform(x)
    assert np.all(np.isfinite(out))
    assert out[:, 0].tolist() == [0.0, 0.0, 0.0]


def test_digits_blank_pixels_do_not_divide_by_zero() -> None:
    ds = load_dataset(DataSpec(source="digits"))
    scaler = fit_scaler(ds.features, "standard")
    assert scaler.scale[0] == 1.0  # the top-left pixel is blank in every digit
    assert np.all(np.isfinite(scaler.transform(ds.features)))


@pytest.mark.parametrize("kind", ["standard", "minmax", "none"])
def test_scaler_round_trips_through_json(kind: str) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(50, 4)).astype(np.float32)
    scaler = fit_scaler(x, kind)
    restored = Scaler.from_dict(json.loads(json.dumps(scaler.to_dict())))
    assert restored.kind == kind
    assert np.array_equal(restored.offset, scaler.offset)
    assert np.array_equal(restored.scale, scaler.scale)
    assert np.array_equal(restored.transform(x), scaler.transform(x))


@pytest.mark.parametrize(
    ("saved", "message"),
    [
        ({"kind": "standard", "offset": [0.0]}, "malformed"),
        ({"kind": "zscore", "offset": [0.0], "scale": [1.0]}, "unknown kind"),
        ({"kind": "standard", "offset": [0.0, 1.0], "scale": [1.0]}, "equal length"),
        ({"kind": "standard", "offset": [0.0], "scale": [0.0]}, "never 0"),
    ],
)
def test_scaler_from_dict_refuses_malformed_data(saved: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        Scaler.from_dict(saved)


def test_scaler_refuses_rows_of_the_wrong_width() -> None:
    scaler = fit_scaler(np.ones((3, 2), dtype=np.float32), "standard")
    with pytest.raises(ShapeMismatch, match="expects 2 features"):
        scaler.transform(np.ones((3, 5), dtype=np.float32))


def test_fit_scaler_refuses_unknown_kind_and_empty_train() -> None:
    with pytest.raises(InvalidInput, match="unknown kind"):
        fit_scaler(np.ones((3, 2), dtype=np.float32), "robust")
    with pytest.raises(InvalidInput, match="empty training split"):
        fit_scaler(np.ones((0, 2), dtype=np.float32), "standard")


# --- user files -------------------------------------------------------------------------------


def test_csv_with_string_labels_skips_text_columns(tmp_path: Path) -> None:
    write_text(
        tmp_path / "flowers.csv",
        "name,petal,sepal,species\nf1,1.5,2,rose\nf2, 2.5 ,3,lily\n\nf3,3.5,4,rose\n",
    )
    ds = load_dataset(DataSpec(source="flowers.csv", label="species"), base_dir=tmp_path)
    assert ds.source == "flowers.csv"
    assert ds.feature_names == ("petal", "sepal")
    assert ds.features.tolist() == [[1.5, 2.0], [2.5, 3.0], [3.5, 4.0]]
    assert ds.labels == ("lily", "rose")
    assert ds.targets.tolist() == [1, 0, 1]
    assert ds.image_shape is None


def test_csv_with_int_labels_sorts_them_as_numbers(tmp_path: Path) -> None:
    path = write_text(tmp_path / "n.csv", "a,b,c,y\n1,2,3,10\n4,5,6,2\n7,8,9,7\n0,0,0,2\n")
    ds = load_dataset(DataSpec(source=str(path), label="y", features=["c", "a"]))
    assert ds.labels == ("2", "7", "10")
    assert ds.targets.tolist() == [2, 0, 1, 0]
    assert ds.feature_names == ("c", "a")
    assert ds.features[:, 0].tolist() == [3.0, 6.0, 9.0, 0.0]


def test_csv_files_with_the_same_values_load_the_same(tmp_path: Path) -> None:
    """Clean files and files with spacing, quotes and blank lines give the same dataset."""
    clean = write_text(tmp_path / "clean.csv", "a,b,note,y\n1,0.25,x,b\n-2,3e2,y,a\n4,5,z,b\n")
    quirky = write_text(
        tmp_path / "quirky.csv",
        'a,b,note,y\n"1", 0.25 ,"x, with comma",b\n\n-2,300,"two\nlines", a \n4,5.0,z,b\n',
    )
    first = load_dataset(DataSpec(source=str(clean), label="y"))
    second = load_dataset(DataSpec(source=str(quirky), label="y"))
    assert first.features.tolist() == [[1.0, 0.25], [-2.0, 300.0], [4.0, 5.0]]
    assert second.features.tolist() == first.features.tolist()
    assert second.labels == first.labels == ("a", "b")
    assert second.fingerprint == first.fingerprint


@pytest.mark.parametrize(
    ("label_values", "labels", "targets"),
    [
        (["b", "a", "b", "c"], ("a", "b", "c"), [1, 0, 1, 2]),
        ([3, 1, 3, 20], ("1", "3", "20"), [1, 0, 1, 2]),
        ([1.0, 0.0, 1.0, 0.0], ("0", "1"), [1, 0, 1, 0]),
    ],
)
def test_parquet_loads_with_string_and_numeric_labels(
    tmp_path: Path, label_values: list[Any], labels: tuple[str, ...], targets: list[int]
) -> None:
    table = pa.table(
        {
            "f1": pa.array([0.5, 1.5, 2.5, 3.5], type=pa.float32()),
            "f2": pa.array([1, 2, 3, 4], type=pa.int64()),
            "note": ["w", "x", "y", "z"],
            "target": label_values,
        }
    )
    pq.write_table(table, tmp_path / "t.parquet")
    ds = load_dataset(DataSpec(source="t.parquet", label="target"), base_dir=tmp_path)
    assert ds.feature_names == ("f1", "f2")
    assert ds.features.tolist() == [[0.5, 1.0], [1.5, 2.0], [2.5, 3.0], [3.5, 4.0]]
    assert ds.labels == labels
    assert ds.targets.tolist() == targets


def test_npz_with_default_arrays_and_string_labels(tmp_path: Path) -> None:
    x = np.arange(12, dtype=np.float64).reshape(4, 3)
    np.savez(tmp_path / "d.npz", x=x, y=np.array(["no", "yes", "yes", "no"]))
    ds = load_dataset(DataSpec(source="d.npz"), base_dir=tmp_path)
    assert ds.features.tolist() == x.tolist()
    assert ds.labels == ("no", "yes")
    assert ds.targets.tolist() == [0, 1, 1, 0]
    assert ds.feature_names == ("x_0", "x_1", "x_2")


def test_npz_image_array_keeps_its_shape(tmp_path: Path) -> None:
    images = np.arange(4 * 2 * 3 * 5, dtype=np.uint8).reshape(4, 2, 3, 5)
    np.savez(tmp_path / "img.npz", pixels=images, cls=np.array([5, 9, 5, 9]))
    ds = load_dataset(DataSpec(source=str(tmp_path / "img.npz"), label="cls"))
    assert ds.image_shape == (2, 3, 5)
    assert ds.features.shape == (4, 30)
    assert ds.features[1].reshape(2, 3, 5).tolist() == images[1].astype(np.float32).tolist()
    assert ds.labels == ("5", "9")


# --- image folders ----------------------------------------------------------------------------


def make_image_folder(root: Path) -> Path:
    """cat: 3 white RGB images 12x10; dog: 2 pure red images 5x7; plus files that are not images."""
    (root / "cat").mkdir(parents=True)
    (root / "dog").mkdir()
    for i in range(3):
        Image.new("RGB", (12, 10), (255, 255, 255)).save(root / "cat" / f"{i}.png")
    for i in range(2):
        Image.new("RGB", (5, 7), (255, 0, 0)).save(root / "dog" / f"{i}.png")
    write_text(root / "dog" / "notes.txt", "not an image")
    write_text(root / "README.md", "the root may hold other files")
    (root / ".cache").mkdir()
    return root


def test_image_folder_loads_resized_grayscale(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "pets")
    ds = load_dataset(DataSpec(source="pets", image_size=(4, 6)), base_dir=tmp_path)
    assert ds.labels == ("cat", "dog")
    assert ds.targets.tolist() == [0, 0, 0, 1, 1]
    assert ds.image_shape == (1, 4, 6)
    assert ds.features.shape == (5, 24)
    assert ds.features.dtype == np.float32
    assert np.allclose(ds.features[:3], 1.0)
    # Pure red in luma (ITU-R 601): 0.299 * 255 = 76.
    assert np.allclose(ds.features[3:], 76 / 255, atol=1 / 255)


def test_image_folder_loads_rgb_channels_first(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "pets")
    spec = DataSpec(source=str(tmp_path / "pets"), image_size=(3, 2), grayscale=False)
    ds = load_dataset(spec)
    assert ds.image_shape == (3, 3, 2)
    assert ds.features.shape == (5, 18)
    red = ds.features[4].reshape(ds.image_shape)
    assert np.allclose(red[0], 1.0)
    assert np.allclose(red[1:], 0.0)
    assert ds.feature_names[6] == "pixel_1_0_0"


def test_image_folder_fingerprint_is_stable(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "pets")
    spec = DataSpec(source=str(tmp_path / "pets"), image_size=(4, 4))
    assert load_dataset(spec).fingerprint == load_dataset(spec).fingerprint


# --- bad data: one DataError line naming the file and the problem ----------------------------

Builder = Callable[[Path], dict[str, Any]]


def csv_case(text: str, **spec: Any) -> Builder:
    def build(tmp: Path) -> dict[str, Any]:
        write_text(tmp / "x.csv", text)
        return {"source": "x.csv", **spec}

    return build


def bytes_case(name: str, data: bytes, **spec: Any) -> Builder:
    def build(tmp: Path) -> dict[str, Any]:
        (tmp / name).write_bytes(data)
        return {"source": name, **spec}

    return build


def parquet_case(columns: dict[str, list[Any]], **spec: Any) -> Builder:
    def build(tmp: Path) -> dict[str, Any]:
        pq.write_table(pa.table(columns), tmp / "x.parquet")
        return {"source": "x.parquet", **spec}

    return build


def npz_case(**arrays: Any) -> Builder:
    def build(tmp: Path) -> dict[str, Any]:
        np.savez(tmp / "x.npz", **arrays)
        return {"source": "x.npz"}

    return build


def images_case(layout: dict[str, list[str]], broken: str | None = None, **spec: Any) -> Builder:
    def build(tmp: Path) -> dict[str, Any]:
        root = tmp / "imgs"
        root.mkdir()
        for folder, files in layout.items():
            (root / folder).mkdir(exist_ok=True)
            for file in files:
                Image.new("L", (4, 4), 128).save(root / folder / file)
        if broken:
            write_text(root / broken, "these bytes are not a PNG")
        return {"source": "imgs", "image_size": (4, 4), **spec}

    return build


def loose_images(tmp: Path) -> dict[str, Any]:
    root = tmp / "imgs"
    root.mkdir()
    Image.new("L", (4, 4)).save(root / "a.png")
    return {"source": "imgs", "image_size": (4, 4)}


def object_npz(tmp: Path) -> dict[str, Any]:
    np.savez(tmp / "x.npz", x=np.ones((2, 2)), y=np.array(["a", 1], dtype=object))
    return {"source": "x.npz"}


GOOD_CSV = "a,b,y\n1,2,u\n3,4,v\n"

BAD_DATA: list[tuple[str, Builder, list[str]]] = [
    ("missing file", lambda tmp: {"source": "nope.csv"}, ['data file "nope.csv"', "not found"]),
    (
        "unknown bundled name",
        lambda tmp: {"source": "mnist"},
        ['unknown dataset "mnist"', "digits, iris, wine, breast_cancer"],
    ),
    ("unsupported extension", bytes_case("x.txt", b"1,2\n"), ['"x.txt"', 'file type ".txt"']),
    (
        "label column not found",
        csv_case(GOOD_CSV, label="species"),
        ['"x.csv"', 'label column "species" not found; columns: a, b, y'],
    ),
    ("label not set", csv_case(GOOD_CSV), ['"x.csv"', "set data.label"]),
    (
        "ragged row",
        csv_case("a,b,y\n1,2,u\n3,4,v\n5,v\n", label="y"),
        ['"x.csv"', "row 3 (line 4) has 2 cells, expected 3"],
    ),
    (
        "non-numeric cell",
        csv_case("a,b,y\n1,2,u\n3,abc,v\n5,6,u\n", label="y"),
        ['"x.csv"', 'column "b" row 2 (line 3) is not numeric ("abc")'],
    ),
    (
        "empty cell",
        csv_case("a,b,y\n1,2,u\n,4,v\n5,6,u\n", label="y"),
        ['"x.csv"', 'column "a" row 2 (line 3) is empty'],
    ),
    (
        "nan cell",
        csv_case("a,b,y\nnan,2,u\n3,4,v\n5,6,u\n", label="y"),
        ['"x.csv"', 'column "a" row 1 (line 2) is not a finite number ("nan")'],
    ),
    (
        "multi-line cell in a numeric column",
        csv_case('a,b,y\n1,2,u\n"3\nfour",4,v\n5,6,u\n', label="y"),
        ['"x.csv"', 'column "a" row 2 (line 4) is not numeric ("3\\nfour")'],
    ),
    (
        "text column asked for as a feature",
        csv_case("a,name,y\n1,p,u\n2,q,v\n", label="y", features=["a", "name"]),
        ['"x.csv"', 'column "name" row 1 (line 2) is not numeric ("p")'],
    ),
    (
        "empty label",
        csv_case("a,b,y\n1,2,u\n3,4,\n", label="y"),
        ['"x.csv"', 'label column "y" row 2 (line 3) is empty'],
    ),
    (
        "feature column not found",
        csv_case(GOOD_CSV, label="y", features=["a", "zzz"]),
        ['"x.csv"', 'feature column "zzz" not found; columns: a, b, y'],
    ),
    ("empty file", csv_case("", label="y"), ['"x.csv"', "is empty"]),
    ("header only", csv_case("a,b,y\n", label="y"), ['"x.csv"', "no data rows"]),
    (
        "one class",
        csv_case("a,y\n1,u\n2,u\n", label="y"),
        ['"x.csv"', 'only 1 class ("u"); need at least 2'],
    ),
    ("not utf-8", bytes_case("x.csv", b"a,y\n1,\xff\xfe\n", label="y"), ['"x.csv"', "UTF-8"]),
    (
        "parquet null cell",
        parquet_case({"a": [1.0, None, 3.0], "y": ["u", "v", "u"]}, label="y"),
        ['"x.parquet"', 'column "a" row 2 is empty'],
    ),
    (
        "parquet nan cell",
        parquet_case({"a": [1.0, 2.0, float("nan")], "y": ["u", "v", "u"]}, label="y"),
        ['"x.parquet"', 'column "a" row 3 is not a finite number'],
    ),
    (
        "parquet label not found",
        parquet_case({"a": [1.0, 2.0], "y": ["u", "v"]}, label="class"),
        ['"x.parquet"', 'label column "class" not found; columns: a, y'],
    ),
    (
        "parquet garbage",
        bytes_case("x.parquet", b"PAR1 not really", label="y"),
        ['"x.parquet"', "not a readable Parquet file"],
    ),
    (
        "npz without label array",
        npz_case(x=np.ones((3, 2))),
        ['"x.npz"', 'label array "y" not found; arrays: x'],
    ),
    (
        "npz rows differ",
        npz_case(x=np.ones((3, 2)), y=np.array([0, 1, 0, 1])),
        ['"x.npz"', 'array "x" has shape [3, 2]; expected 4 rows'],
    ),
    ("npz of pickled objects", object_npz, ['"x.npz"', "not a readable .npz archive"]),
    ("npz garbage", bytes_case("x.npz", b"PK not a zip"), ['"x.npz"', "not a readable .npz"]),
    ("images without class folders", loose_images, ['"imgs"', "no class sub-folders"]),
    (
        "unreadable image",
        images_case({"cat": ["1.png"], "dog": ["1.png"]}, broken="dog/2.png"),
        ['"imgs"', 'image "dog/2.png" cannot be read'],
    ),
    (
        "empty class folder",
        images_case({"cat": ["1.png"], "dog": []}),
        ['"imgs"', 'class folder "dog" has no images'],
    ),
    (
        "images without image_size",
        images_case({"cat": ["1.png"], "dog": ["1.png"]}, image_size=None),
        ['"imgs"', "set data.image_size"],
    ),
    (
        "image folder with a label column",
        images_case({"cat": ["1.png"], "dog": ["1.png"]}, label="class"),
        ['"imgs"', "classes are its sub-folder names"],
    ),
    (
        "images of one class",
        images_case({"cat": ["1.png", "2.png"]}),
        ['"imgs"', 'only 1 class ("cat")'],
    ),
]


@pytest.mark.parametrize(
    ("build", "expected"), [(b, e) for _, b, e in BAD_DATA], ids=[i for i, _, _ in BAD_DATA]
)
def test_bad_data_raises_one_line_data_error(
    tmp_path: Path, build: Builder, expected: list[str]
) -> None:
    spec = DataSpec(**build(tmp_path))
    with pytest.raises(DataError) as info:
        load_dataset(spec, base_dir=tmp_path)
    message = str(info.value)
    assert "\n" not in message
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


def test_data_module_does_not_import_torch() -> None:
    code = "import sys, maas.train.data; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
