"""`SamplingParams` and `pick_token`: how the next token is chosen from a row of logits.

Temperature 0 is greedy (the highest logit, ties to the lowest id). Otherwise the logits are
divided by the temperature, turned into probabilities, cut to the smallest set whose mass reaches
`top_p` (nucleus sampling) and sampled with the sequence's own generator, so the same seed and
the same logits give the same tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from maas.errors import InvalidInput

MAX_TEMPERATURE = 2.0  # OpenAI's range: [0, 2]
MAX_STOP_STRINGS = 4  # OpenAI's limit
MAX_STOP_CHARS = 256  # a stop string longer than this is a mistake, and costs every step
MAX_SEED = 2**63 - 1


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How one sequence is sampled and when it stops.

    Attributes:
        max_tokens: most tokens to generate.
        temperature: 0 for greedy, up to 2.
        top_p: nucleus mass in (0, 1].
        stop: strings that end the text (not included in it).
        seed: makes sampling repeatable (None: fresh randomness).
    """

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = field(default=())
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise InvalidInput(f"max_tokens must be at least 1, got {self.max_tokens}")
        if not 0.0 <= self.temperature <= MAX_TEMPERATURE:
            raise InvalidInput(f"temperature must be between 0 and 2, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise InvalidInput(f"top_p must be in (0, 1], got {self.top_p}")
        if len(self.stop) > MAX_STOP_STRINGS:
            raise InvalidInput(f"at most {MAX_STOP_STRINGS} stop strings, got {len(self.stop)}")
        for text in self.stop:
            if not text or len(text) > MAX_STOP_CHARS:
                raise InvalidInput(f"a stop string must have 1 to {MAX_STOP_CHARS} characters")
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise InvalidInput(f"seed must be between 0 and {MAX_SEED}")

    def generator(self) -> np.random.Generator:
        """The sequence's own random generator (seeded when a seed was given)."""
        return np.random.default_rng(self.seed)


def pick_token(logits: np.ndarray, params: SamplingParams, rng: np.random.Generator) -> int:
    """The next token from one row of logits (float32 [vocab])."""
    if params.temperature == 0.0:
        return int(np.argmax(logits))
    scaled = logits.astype(np.float64) / params.temperature
    scaled -= scaled.max()
    probs = np.exp(scaled)
    probs /= probs.sum()
    if params.top_p < 1.0:
        order = np.argsort(-probs, kind="stable")
        mass = np.cumsum(probs[order])
        keep = int(np.searchsorted(mass, params.top_p)) + 1  # the smallest set reaching top_p
        chosen = order[:keep]
        kept = probs[chosen] / probs[chosen].sum()
        return int(chosen[rng.choice(keep, p=kept)])
    return int(rng.choice(probs.shape[0], p=probs))
