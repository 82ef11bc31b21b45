"""Text for synthetic speech: common English words from a word list shipped in a package.

``wordfreq`` ships its frequency tables inside the wheel (no network), so the list is
fixed for a given version; only words in the AM alphabet (a-z and apostrophe) are kept.
"""

from __future__ import annotations

import functools
import re

import numpy as np

_WORD = re.compile(r"^[a-z][a-z']*[a-z]$|^[ai]$")


@functools.lru_cache(maxsize=4)
def common_words(n: int = 6000) -> tuple[str, ...]:
    """The ``n`` most frequent English words written only with a-z and apostrophes."""
    from wordfreq import top_n_list

    out: list[str] = []
    for w in top_n_list("en", n * 3):
        if _WORD.match(w) and w not in out:
            out.append(w)
        if len(out) == n:
            break
    return tuple(out)


def random_sentence(rng: np.random.Generator, n_min: int = 4, n_max: int = 10,
                    vocab: int = 6000) -> str:  # fmt: skip
    """Random word sequence; word choice is Zipf-weighted so frequent words recur."""
    words = common_words(vocab)
    k = int(rng.integers(n_min, n_max + 1))
    ranks = np.arange(1, len(words) + 1)
    p = 1.0 / ranks**0.6
    p /= p.sum()
    return " ".join(words[i] for i in rng.choice(len(words), size=k, p=p))
