"""Conversation streams: long recordings of ordinary speech with commands among it, for spotting.

The measure of a spotter is what it does in continuous listening: how many of the commands said
to it it finds, and how often it acts on its own during ordinary talk (false alarms per hour).
A stream is several talkers taking turns with ordinary sentences (random sequences of common
English words, :func:`rced.text.random_sentence`), a few tenths of a second apart; now and then
one of them says a command of the grammar, set apart by a pause as one addresses a device; all of
it in continuous babble of other TRAIN-voice talkers at ``snr`` dB below the speech.

Two voice splits: ``test`` (the TEST-ONLY voices, the natural one included: the benchmark) and
``dev`` (TRAIN voices other than espeak-ng: where spotter settings are chosen). Deterministic in
the configuration; the utterances come from :func:`rced.corpus.load_utterances` (cached).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from grammar.decoding.demo import Scene, assemble
from grammar.errors import GrammarError

SENTENCE_WORDS = (4, 12)  # words per ordinary sentence
TURN_GAP_S = (0.2, 0.8)  # between ordinary sentences
COMMAND_GAP_S = (1.0, 2.0)  # before and after a command (the demo's pause)
BABBLE_UTTERANCES = 60


@dataclasses.dataclass(frozen=True)
class ConversationConfig:
    """What defines a stream. ``command_every`` ordinary sentences on average between commands."""

    minutes: float = 32.0
    snr: float = 10.0
    seed: int = 2026
    split: str = "test"
    command_every: float = 5.0

    def __post_init__(self) -> None:
        if self.split not in ("test", "dev"):
            raise GrammarError(f"conversation: split {self.split!r} is neither 'test' nor 'dev'")
        if not np.isfinite(self.minutes) or self.minutes <= 0:
            raise GrammarError(f"conversation: {self.minutes} minutes must be a positive number")
        if not self.command_every >= 1:
            raise GrammarError(f"conversation: command_every {self.command_every} must be at least 1 sentence")


def split_voices(split: str):
    """The talkers of a split: ``test`` the TEST-ONLY voices and the natural one; ``dev`` Kokoro
    speakers that no training saw (:func:`rced.tts.kokoro_dev_voices`)."""
    from rced.tts import kokoro_dev_voices, natural_test_voices, test_voices

    if split == "test":
        return test_voices() + natural_test_voices()
    return kokoro_dev_voices()


def plan(commands: Sequence[str], cfg: ConversationConfig) -> list[tuple[str, str | None, int, float]]:
    """(text, command or None, voice index, seconds of babble after it) per utterance, until the
    expected speech time reaches ``cfg.minutes``. Commands go round the grammar and the voices in
    turn (so every voice says about as many), at random positions in the talk."""
    if not commands:
        raise GrammarError("conversation: the grammar has no commands")
    from rced.text import random_sentence

    rng = np.random.default_rng(cfg.seed)
    n_voices = len(split_voices(cfg.split))
    items: list[tuple[str, str | None, int, float]] = []
    seconds, n_cmd = 0.0, 0
    order = rng.permutation(len(commands))
    while seconds < cfg.minutes * 60:
        if rng.random() < 1.0 / cfg.command_every:
            cmd = commands[order[n_cmd % len(commands)]]
            voice = n_cmd % n_voices
            if items:  # the pause before a command
                t, c, v, _ = items[-1]
                items[-1] = (t, c, v, float(rng.uniform(*COMMAND_GAP_S)))
            items.append((cmd, cmd, voice, float(rng.uniform(*COMMAND_GAP_S))))
            n_cmd += 1
            if n_cmd % len(commands) == 0:
                order = rng.permutation(len(commands))
            seconds += 0.8 + 3.0
        else:
            text = random_sentence(rng, *SENTENCE_WORDS)
            items.append((text, None, int(rng.integers(n_voices)), float(rng.uniform(*TURN_GAP_S))))
            seconds += 0.35 * len(text.split()) + 0.5
    return items


def make_conversation(commands: Sequence[str], cfg: ConversationConfig = ConversationConfig(),
                      workers: int | None = None) -> Scene:  # fmt: skip
    """The stream of :func:`plan`, synthesized and mixed in babble (babble talkers: TRAIN voices,
    seeds apart from every training set's)."""
    from rced.corpus import Utterance, load_utterances, train_utterances
    from rced.tts import Prosody

    voices = split_voices(cfg.split)
    items = plan(commands, cfg)
    utts = [Utterance(text, voices[v], Prosody(), cfg.seed * 100_000 + i) for i, (text, _, v, _) in enumerate(items)]
    speech = load_utterances(utts, workers=workers, desc=f"conversation ({cfg.split})")
    pool = load_utterances(train_utterances(BABBLE_UTTERANCES, cfg.seed + 900_001), workers=workers,
                           desc="conversation babble")  # fmt: skip
    rng = np.random.default_rng(cfg.seed + 1)
    mixed = [(text, cmd, voices[v].id, x, gap) for (text, cmd, v, gap), x in zip(items, speech)]
    clean, noisy, segments = assemble(mixed, pool, cfg.snr, rng)
    return Scene(clean, noisy, segments, 16000, cfg.split, cfg.snr, cfg.seed)
