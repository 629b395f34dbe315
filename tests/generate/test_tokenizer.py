"""`TextTokenizer` and `Detokenizer`: round trips, streamed text, chat templates."""

from __future__ import annotations

import dataclasses

import pytest
from lm_models import TinyLm

from maas.errors import InvalidInput
from maas.generate.model import LmConfig
from maas.generate.tokenizer import ChatMessage, Detokenizer, TextTokenizer

pytestmark = pytest.mark.timeout(30)


def test_streamed_text_equals_the_whole_even_inside_a_character(tokenizer: TextTokenizer) -> None:
    text = "héllo wörld — ünïcode ✓ done"
    ids = tokenizer.encode(text)
    detokenizer = Detokenizer(tokenizer)
    pieces = [detokenizer.push([token]) for token in ids]
    pieces.append(detokenizer.flush())
    assert "".join(pieces) == text == tokenizer.decode(ids)
    assert all("\ufffd" not in piece for piece in pieces)  # half characters were held back
    assert "" in pieces  # ...which happened: byte-level pieces split the accents


def test_bos_goes_first_when_the_model_has_one(tiny_lm: TinyLm, lm_config: LmConfig) -> None:
    with_bos = TextTokenizer(tiny_lm.tokenizer_json, dataclasses.replace(lm_config, bos_token_id=0))
    assert with_bos.encode("hello")[0] == 0
    assert with_bos.encode("hello")[1:] == TextTokenizer(tiny_lm.tokenizer_json, lm_config).encode(
        "hello"
    )


def test_the_model_chat_template_is_used(tiny_lm: TinyLm, lm_config: LmConfig) -> None:
    template = (
        "{% for m in messages %}[{{ m.role | upper }}] {{ m.content }}{{ eos_token }}{% endfor %}"
        "{% if add_generation_prompt %}[ASSISTANT] {% endif %}"
    )
    config = dataclasses.replace(lm_config, chat_template=template)
    tokenizer = TextTokenizer(tiny_lm.tokenizer_json, config)
    prompt = tokenizer.render_chat([ChatMessage("user", "hi")])
    assert prompt == "[USER] hi<|endoftext|>[ASSISTANT] "


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{% for m in messages %}", "does not compile"),
        ("{{ raise_exception('only user turns') }}", "only user turns"),
        ("{{ ''.__class__.__mro__ }}", "cannot render"),  # the sandbox refuses internals
    ],
)
def test_bad_templates_are_refused(
    tiny_lm: TinyLm, lm_config: LmConfig, template: str, message: str
) -> None:
    config = dataclasses.replace(lm_config, chat_template=template)
    with pytest.raises(InvalidInput, match=message):
        TextTokenizer(tiny_lm.tokenizer_json, config).render_chat([ChatMessage("user", "x")])


def test_a_broken_tokenizer_json_is_refused(lm_config: LmConfig) -> None:
    with pytest.raises(InvalidInput, match="tokenizer JSON cannot be read"):
        TextTokenizer("{not json", lm_config)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "classifier"}, "kind must be 'causal_lm'"),
        ({"layers": "2"}, "'layers' must be an integer"),
        ({"context": None}, "'context' must be an integer"),
        ({"bos_token_id": "x"}, "bos_token_id"),
    ],
)
def test_generation_config_is_checked(
    tiny_lm: TinyLm, change: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        LmConfig.from_dict({**tiny_lm.config, **change})
