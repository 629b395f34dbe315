"""`TextTokenizer`: text to tokens and back (a Hugging Face `tokenizers` JSON), chat prompts, and
`Detokenizer`, which turns a growing list of tokens into text deltas safe to stream.

Chat messages become a prompt through the model's Jinja chat template (rendered in a sandbox)
when its generation config has one, else through `DEFAULT_CHAT_TEMPLATE`:

    <|system|>
    You are terse.
    <|user|>
    Hello!
    <|assistant|>

(one `<|role|>` line, then the content on the next line, per message; the prompt ends with the
assistant's line, where the model continues).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tokenizers import Tokenizer

from maas.errors import InvalidInput
from maas.generate.model import LmConfig

DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message.role }}|>\n{{ message.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
CHAT_ROLES = frozenset({"system", "developer", "user", "assistant"})
INCOMPLETE = "\ufffd"  # what decoding yields for the first bytes of an unfinished character


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of a chat."""

    role: str
    content: str


class TextTokenizer:
    """A model's tokenizer.

    Args:
        tokenizer_json: the tokenizer in the `tokenizers` JSON format (`Tokenizer.to_str()`).
        config: the model's generation config (BOS, EOS, chat template).

    Raises:
        InvalidInput: the JSON is not a tokenizer, or the template does not compile.
    """

    def __init__(self, tokenizer_json: str, config: LmConfig) -> None:
        try:
            self._tokenizer = Tokenizer.from_str(tokenizer_json)
        except Exception as err:  # tokenizers raises plain exceptions for bad JSON
            raise InvalidInput(f"the tokenizer JSON cannot be read: {err}") from err
        self._config = config
        self._template = _compile_template(config.chat_template or DEFAULT_CHAT_TEMPLATE)

    def encode(self, text: str) -> list[int]:
        """The prompt's tokens (with the BOS token first when the model has one)."""
        ids: list[int] = self._tokenizer.encode(text, add_special_tokens=False).ids
        bos = self._config.bos_token_id
        return [bos, *ids] if bos is not None else ids

    def decode(self, ids: Sequence[int]) -> str:
        """Text of `ids`, special tokens left out."""
        text: str = self._tokenizer.decode(list(ids), skip_special_tokens=True)
        return text

    def token_text(self, token_id: int) -> str:
        """The surface string of one token (`""` when it has none)."""
        token = self._tokenizer.id_to_token(token_id)
        return token if token is not None else ""

    def render_chat(self, messages: Sequence[ChatMessage]) -> str:
        """The prompt for `messages`, ending where the assistant's reply starts.

        Raises:
            InvalidInput: the template refuses the messages.
        """
        docs = [{"role": m.role, "content": m.content} for m in messages]
        eos = self.token_text(self._config.eos_token_id)
        bos_id = self._config.bos_token_id
        bos = self.token_text(bos_id) if bos_id is not None else ""
        try:
            text: str = self._template.render(
                messages=docs, add_generation_prompt=True, bos_token=bos, eos_token=eos
            )
        except InvalidInput:
            raise
        except Exception as err:  # jinja2 errors: the template cannot render these messages
            raise InvalidInput(f"the chat template cannot render these messages: {err}") from err
        return text


def _compile_template(source: str) -> Any:
    """A Jinja template in a sandbox (templates come with models; they run no Python)."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise InvalidInput(f"chat template: {message}")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)  # a prompt, not HTML
    env.globals["raise_exception"] = raise_exception
    try:
        return env.from_string(source)
    except Exception as err:  # jinja2.TemplateSyntaxError and kin
        raise InvalidInput(f"the chat template does not compile: {err}") from err


class Detokenizer:
    """Text deltas of a growing token list, holding back a character not yet complete.

    Each call decodes only the tokens since the previous boundary (with the piece before it,
    for tokenizers whose pieces depend on their neighbours), so the work per token stays small
    however long the output grows.
    """

    __slots__ = ("_ids", "_prefix_end", "_read_end", "_tokenizer")

    def __init__(self, tokenizer: TextTokenizer) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._prefix_end = 0  # where the piece decoded for context starts
        self._read_end = 0  # ids before this index have been emitted as text

    def push(self, token_ids: Sequence[int]) -> str:
        """Add tokens; return the new text they complete (may be empty)."""
        self._ids.extend(token_ids)
        return self._delta(is_final=False)

    def flush(self) -> str:
        """The text still held back (an unfinished character shows as U+FFFD)."""
        return self._delta(is_final=True)

    def _delta(self, *, is_final: bool) -> str:
        decode = self._tokenizer.decode
        prefix = decode(self._ids[self._prefix_end : self._read_end])
        full = decode(self._ids[self._prefix_end :])
        if len(full) <= len(prefix) or (full.endswith(INCOMPLETE) and not is_final):
            return ""
        self._prefix_end = self._read_end
        self._read_end = len(self._ids)
        return full[len(prefix) :]
