"""`kind: gpt`: a small decoder-only transformer (GPT-2 layout) with a key/value cache.

Pre-norm blocks of causal self-attention and a GELU MLP, learned position embeddings, a final
norm and a linear head over the vocabulary. One code path serves training (`forward`: tokens ->
logits) and generation (`step`: tokens, attention mask, positions and the cache of earlier steps ->
logits and the grown cache), so the exported graph computes exactly what was trained.

Every mask is computed from tensors (never from Python integers), so a traced export keeps the
batch, sequence and past lengths symbolic.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from maas.train.spec import GptOptions

KeyValue = tuple[torch.Tensor, torch.Tensor]  # key, value: [batch, heads, length, head_dim]
INIT_STD = 0.02  # GPT-2's initialisation of weights and embeddings


class CausalSelfAttention(nn.Module):
    """Multi-head attention where each position sees the past and itself, never the future."""

    def __init__(self, options: GptOptions) -> None:
        super().__init__()
        self.heads = options.heads
        self.head_dim = options.dim // options.heads
        self.qkv = nn.Linear(options.dim, 3 * options.dim)
        self.proj = nn.Linear(options.dim, options.dim)
        self.dropout = nn.Dropout(options.dropout)

    def forward(
        self, x: torch.Tensor, allowed: torch.Tensor, past: KeyValue | None
    ) -> tuple[torch.Tensor, KeyValue]:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (t.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2) for t in (q, k, v))
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))
        # The smallest float, not -inf: a fully masked row (left padding) stays finite.
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        weights = self.dropout(torch.softmax(scores, dim=-1))
        out = (weights @ v).transpose(1, 2).flatten(2)
        return self.dropout(self.proj(out)), (k, v)


class Block(nn.Module):
    """Norm -> attention -> residual, norm -> MLP -> residual."""

    def __init__(self, options: GptOptions) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(options.dim)
        self.attention = CausalSelfAttention(options)
        self.norm2 = nn.LayerNorm(options.dim)
        self.mlp = nn.Sequential(
            nn.Linear(options.dim, 4 * options.dim),
            nn.GELU(),
            nn.Linear(4 * options.dim, options.dim),
            nn.Dropout(options.dropout),
        )

    def forward(
        self, x: torch.Tensor, allowed: torch.Tensor, past: KeyValue | None
    ) -> tuple[torch.Tensor, KeyValue]:
        attended, present = self.attention(self.norm1(x), allowed, past)
        x = x + attended
        return x + self.mlp(self.norm2(x)), present


def attention_allowed(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Which keys each new position may attend to: bool [batch, 1, seq, past + seq].

    Key j is visible to new position i when the mask marks j and j is not after i (the new
    positions are the last `seq` of the `past + seq` keys).
    """
    key_index = torch.cumsum(torch.ones_like(attention_mask), dim=1) - 1
    past_length = attention_mask.shape[1] - input_ids.shape[1]
    query_index = torch.cumsum(torch.ones_like(input_ids), dim=1) - 1 + past_length
    causal = key_index[:, None, :] <= query_index[:, :, None]
    return (causal & (attention_mask[:, None, :] > 0))[:, None, :, :]


class GPT(nn.Module):
    """Token ids [batch, seq] -> next-token logits [batch, seq, vocab]."""

    def __init__(self, vocab_size: int, options: GptOptions) -> None:
        super().__init__()
        self.options = options
        self.vocab_size = vocab_size
        self.token_embedding = nn.Embedding(vocab_size, options.dim)
        self.position_embedding = nn.Embedding(options.context, options.dim)
        self.dropout = nn.Dropout(options.dropout)
        self.blocks = nn.ModuleList(Block(options) for _ in range(options.layers))
        self.norm = nn.LayerNorm(options.dim)
        self.head = nn.Linear(options.dim, vocab_size, bias=False)
        self.apply(_init_weights)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Logits for every position of full sequences (training and evaluation)."""
        mask = torch.ones_like(input_ids)
        positions = torch.cumsum(mask, dim=1) - 1
        logits, _ = self.step(input_ids, mask, positions, None)
        return logits

    def step(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        past: list[KeyValue] | None,
    ) -> tuple[torch.Tensor, list[KeyValue]]:
        """One call of generation: new tokens after a cache of `past` ones.

        Args:
            input_ids: int64 [batch, seq], the new tokens.
            attention_mask: int64 [batch, past + seq], 1 where a key may be attended to.
            position_ids: int64 [batch, seq], the positions of the new tokens.
            past: one (key, value) per layer, [batch, heads, past, head_dim]; None for none.

        Returns:
            Logits [batch, seq, vocab] and the cache with the new tokens appended.
        """
        allowed = attention_allowed(input_ids, attention_mask)
        x = self.dropout(self.token_embedding(input_ids) + self.position_embedding(position_ids))
        presents: list[KeyValue] = []
        for index, block in enumerate(self.blocks):
            x, present = block(x, allowed, None if past is None else past[index])
            presents.append(present)
        return self.head(self.norm(x)), presents


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear | nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=INIT_STD)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


class CausalLMGraph(nn.Module):
    """What is exported: the Hugging Face "decoder with past" interface over `GPT.step`.

    Positional inputs: input_ids, attention_mask, position_ids, then key and value of every layer;
    outputs: logits, then present key and value of every layer.
    """

    def __init__(self, model: GPT) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        *past_flat: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        past = [(past_flat[2 * i], past_flat[2 * i + 1]) for i in range(len(past_flat) // 2)]
        logits, presents = self.model.step(input_ids, attention_mask, position_ids, past)
        return (logits, *(t for pair in presents for t in pair))
