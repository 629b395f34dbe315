"""Names, aliases and NAME[@REF] parsing."""

from __future__ import annotations

import pytest

from maas.errors import InvalidInput
from maas.registry import ModelRef, parse_ref
from maas.registry.refs import check_alias, check_name, describe_versions


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("digits", ModelRef("digits", "latest")),
        ("digits@3", ModelRef("digits", 3)),
        ("digits@latest", ModelRef("digits", "latest")),
        ("digits@production", ModelRef("digits", "production")),
        ("iris.v2_x-1@12", ModelRef("iris.v2_x-1", 12)),
    ],
)
def test_parse_ref(text: str, expected: ModelRef) -> None:
    assert parse_ref(text) == expected


@pytest.mark.parametrize("text", ["Digits", "-x", "a b", "x@", "x@0", "x@Prod", "", "x/y@1"])
def test_parse_ref_refuses_malformed(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_ref(text)


@pytest.mark.parametrize("name", ["UPPER", ".hidden", "a/b", "é", "x" * 129])
def test_check_name_refuses(name: str) -> None:
    with pytest.raises(InvalidInput, match="invalid model name"):
        check_name(name)


@pytest.mark.parametrize("alias", ["12", "latest", "Prod", ""])
def test_check_alias_refuses(alias: str) -> None:
    with pytest.raises(InvalidInput, match="invalid alias"):
        check_alias(alias)


@pytest.mark.parametrize(
    ("numbers", "text"),
    [([], "none"), ([1], "1"), ([1, 2, 3], "1-3"), ([5, 1, 2, 3, 7, 8], "1-3, 5, 7-8")],
)
def test_describe_versions(numbers: list[int], text: str) -> None:
    assert describe_versions(numbers) == text
