"""Synthetic corpus: TTS speech, multi-talker babble, mixing; cached on disk, deterministic.

Utterances are generated in parallel (one process per core) with a progress bar and cached
under ``$STAPES_CACHE`` (default ``~/.cache/stapes``) by a hash of what defines them, so a
second run costs nothing. Evaluation material comes only from the TEST-ONLY voices and the
real recordings that ``pysptk`` and ``amfm-decompy`` ship (and, when asked for, the natural
TEST-ONLY voice).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from rced.audio import DEFAULT_SR, load_audio, write_audio
from rced.errors import RcedError
from rced.text import random_sentence
from rced.tts import (
    Prosody,
    Voice,
    kokoro_more_voices,
    kokoro_voices,
    natural_test_voices,
    natural_train_voices,
    pico_voices,
    prepare,
    synthesize,
    test_voices,
    train_voices,
)

EVAL_SNRS = (-5.0, 0.0, 5.0, 10.0)


def cache_dir() -> Path:
    return Path(os.environ.get("STAPES_CACHE", Path.home() / ".cache" / "stapes"))


@dataclasses.dataclass(frozen=True)
class Utterance:
    """Everything that defines one synthetic utterance (its cache key)."""

    text: str
    voice: Voice
    prosody: Prosody
    seed: int

    def key(self) -> str:
        blob = json.dumps(dataclasses.asdict(self), sort_keys=True).encode()
        return hashlib.sha1(blob).hexdigest()[:16]


def plan_utterances(voices: list[Voice], n: int, seed: int, *, natural_share: float = 0.5,
                    natural: list[Voice] | None = None, n_words: tuple[int, int] = (4, 10),
                    vocab: int = 6000) -> list[Utterance]:  # fmt: skip
    """Deterministic list of ``n`` utterances; ``natural_share`` of them from ``natural`` voices."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        pool = natural if natural and rng.random() < natural_share else voices
        voice = pool[int(rng.integers(len(pool)))]
        prosody = Prosody(stretch=round(float(rng.uniform(0.85, 1.2)), 3),
                          pitch=round(float(rng.uniform(-3, 3)), 2))  # fmt: skip
        text = random_sentence(rng, *n_words, vocab=vocab)
        out.append(Utterance(text, voice, prosody, int(seed * 1_000_003 + i)))
    return out


def train_utterances(n: int, seed: int, pico: int = 0, kokoro: int = 0, kokoro_more: int = 0) -> list[Utterance]:
    """TRAIN-voice utterances: half natural-sounding voices (flite, festival, Piper), half espeak-ng,
    then ``pico`` more from the SVOX Pico voices, ``kokoro`` more from the first Kokoro speakers and
    ``kokoro_more`` from the Kokoro speakers numbered after the dev block (each planned apart, so
    the utterances before them never change)."""
    utts = plan_utterances(train_voices(), n, seed, natural=natural_train_voices())
    if pico:
        utts += plan_utterances(pico_voices(), pico, seed * 7919 + 17)
    if kokoro:
        utts += plan_utterances(kokoro_voices(), kokoro, seed * 7919 + 29)
    if kokoro_more:
        utts += plan_utterances(kokoro_more_voices(), kokoro_more, seed * 7919 + 31)
    return utts


def _per_voice(voices: list[Voice], n_per_voice: int, seed: int) -> list[Utterance]:
    """``n_per_voice`` utterances of each voice, voice ``k`` planned from seed ``seed + k``."""
    out = []
    for k, v in enumerate(voices):
        out += plan_utterances([v], n_per_voice, seed + k)
    return out


def test_utterances(n_per_voice: int, seed: int) -> list[Utterance]:
    """TEST-ONLY voices, ``n_per_voice`` each."""
    return _per_voice(test_voices(), n_per_voice, seed * 31 + 7)


def natural_test_utterances(n_per_voice: int, seed: int) -> list[Utterance]:
    """The natural TEST-ONLY voice(s), ``n_per_voice`` each (seeds apart from :func:`test_utterances`'s)."""
    return _per_voice(natural_test_voices(), n_per_voice, seed * 31 + 101)


def _path_for(u: Utterance) -> Path:
    return cache_dir() / "utts" / u.voice.cache_folder / f"{u.key()}.wav"


def _synth_one(u: Utterance) -> str:
    path = _path_for(u)
    if not path.exists():
        audio = synthesize(u.text, u.voice, u.prosody, seed=u.seed)
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        if peak > 0.99:
            audio = audio * (0.99 / peak)
        write_audio(path, audio)  # atomic: an interrupted run leaves no half file
    return str(path)


def synthesize_all(utts: list[Utterance], workers: int | None = None, desc: str = "synthesizing") -> list[Path]:
    """Synthesize (or find in the cache) every utterance, in parallel, with a progress bar."""
    from tqdm import tqdm

    todo = [u for u in utts if not _path_for(u).exists()]
    if todo:
        prepare({u.voice.engine for u in todo})  # before the pool: no worker races another's first use
        workers = workers or os.cpu_count() or 1
        with ProcessPoolExecutor(workers) as ex:
            for _ in tqdm(ex.map(_synth_one, todo, chunksize=4), total=len(todo), desc=desc, unit="utt"):
                pass
    return [_path_for(u) for u in utts]


def load_utterances(utts: list[Utterance], **kw) -> list[np.ndarray]:
    return [load_audio(p) for p in synthesize_all(utts, **kw)]


VOCODER = {"hop": 80, "frame": 1024, "order": 25, "alpha": 0.41, "f0_min": 60.0, "f0_max": 400.0}  # 16 kHz


def vocode(x: np.ndarray, sr: int = 16000, warp: float = 0.0, f0_scale: float = 1.0) -> np.ndarray:
    """MLSA analysis-synthesis of ``x`` (16 kHz) at the same RMS: 25th-order mel-cepstrum, SWIPE'
    pitch, pulse/noise excitation, the vocoder of statistical parametric (HTS) synthesis. No
    TRAIN voice is vocoded this way and one TEST-ONLY voice is, so vocoded TRAIN-voice speech is
    a training variation (``scripts/gpu/pack_rced_data.py --vocode``; ``benchmarks/vocoder_gap.py``).

    ``warp`` synthesises with the all-pass constant ``alpha + warp`` (> 0 moves the spectral
    envelope down in frequency: a longer vocal tract), ``f0_scale`` multiplies the pitch: with
    both, one TRAIN voice becomes many new ones."""
    import librosa
    import pysptk
    from pysptk.synthesis import MLSADF, Synthesizer

    v = VOCODER
    if sr != 16000:
        raise RcedError(f"vocode: the vocoder settings are for 16 kHz, got {sr} Hz")
    if not (abs(warp) < 0.3 and 0.25 <= f0_scale <= 4.0):
        raise RcedError(f"vocode: warp must be in (-0.3, 0.3) and f0_scale in [0.25, 4], got {warp}, {f0_scale}")
    x = np.asarray(x, np.float64)
    f0 = pysptk.swipe(x, sr, v["hop"], min=v["f0_min"], max=v["f0_max"], otype="f0")
    pad = np.pad(x, (v["frame"] // 2, v["frame"] // 2))
    frames = librosa.util.frame(pad, frame_length=v["frame"], hop_length=v["hop"]).T * pysptk.blackman(v["frame"])
    n = min(len(frames), len(f0))
    mc = pysptk.mcep(np.ascontiguousarray(frames[:n]), v["order"], v["alpha"], eps=1e-8, etype=1)
    pitch = np.where(f0[:n] > 0, sr / np.maximum(f0[:n] * f0_scale, 1e-3), 0.0)
    alpha = v["alpha"] + warp
    y = Synthesizer(MLSADF(v["order"], alpha), v["hop"]).synthesis(pysptk.excite(pitch, v["hop"]),
                                                                 pysptk.mc2b(mc, alpha))  # fmt: skip
    y = np.pad(y[: len(x)], (0, max(0, len(x) - len(y))))
    gain = np.sqrt(np.mean(x * x) / max(float(np.mean(y * y)), 1e-20))
    return np.clip(y * gain, -1.0, 1.0).astype(np.float32)


def real_recordings() -> list[tuple[str, np.ndarray]]:
    """The two real human recordings shipped by pysptk (CMU ARCTIC) and amfm-decompy."""
    out = []
    try:
        import pysptk.util

        out.append(("real:pysptk_arctic_a0007", load_audio(pysptk.util.example_audio_file())))
    except ImportError:
        pass
    try:
        import amfm_decompy

        out.append(("real:amfm_sample", load_audio(Path(amfm_decompy.__file__).parent / "sample.wav")))
    except ImportError:
        pass
    return out


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def make_babble(n_samples: int, pool: list[np.ndarray], rng: np.random.Generator,
                talkers: tuple[int, int] = (3, 8)) -> np.ndarray:  # fmt: skip
    """Sum of 3-8 talkers at equal level, each a random run of pool utterances."""
    if not pool:
        raise RcedError("babble: empty utterance pool")
    k = int(rng.integers(talkers[0], talkers[1] + 1))
    out = np.zeros(n_samples, np.float64)
    for _ in range(k):
        track: list[np.ndarray] = []
        filled = 0
        start = int(rng.integers(0, DEFAULT_SR))
        while filled < n_samples + start:
            u = pool[int(rng.integers(len(pool)))]
            u = u / rms(u)
            track.append(u)
            filled += len(u)
        out += np.concatenate(track)[start : start + n_samples]
    return (out / rms(out)).astype(np.float32)


def mix(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """clean + noise scaled so that the clean-to-noise power ratio is ``snr_db``."""
    gain = rms(clean) / (rms(noise) * 10 ** (snr_db / 20))
    return (clean + gain * noise[: len(clean)]).astype(np.float32)


def crossfade_join(pieces: list[np.ndarray], fade: int) -> np.ndarray:
    """``pieces`` one after the other, each fading linearly into the next over ``fade`` samples
    (piece i then starts ``fade`` samples before the previous one ends): long streams made of
    separately mixed parts, without the step a butt joint puts between two noises."""
    out = np.zeros(0, np.float32)
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    for x in pieces:
        x = np.asarray(x, np.float32)
        if len(out) and fade:
            if min(len(out), len(x)) < fade:
                raise RcedError(f"crossfade_join: a piece of {min(len(out), len(x))} samples is shorter than the fade ({fade})")
            x = np.concatenate([out[-fade:] * (1 - ramp) + x[:fade] * ramp, x[fade:]])
            out = out[:-fade]
        out = np.concatenate([out, x])
    return out


@dataclasses.dataclass
class EvalItem:
    name: str  # voice or recording id plus utterance index
    snr: float
    clean: np.ndarray
    noisy: np.ndarray


#: Real speech from Debian's alsa-utils: one woman says the eight channel names of its speaker
#: test (48 kHz studio recordings, about a second each).
ALSA_DIR = Path("/usr/share/sounds/alsa")
ALSA_PHRASES = ("front left", "front center", "front right", "rear left", "rear center", "rear right",
                "side left", "side right")  # fmt: skip


def alsa_recordings() -> list[tuple[str, np.ndarray]]:
    """(phrase, 16-kHz audio) of the speaker-test recordings; a one-line RcedError when absent."""
    paths = [ALSA_DIR / f"{p.title().replace(' ', '_')}.wav" for p in ALSA_PHRASES]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        raise RcedError(f"{ALSA_DIR}: no {', '.join(missing)} (apt-get install alsa-utils)")
    return [(phrase, load_audio(p)) for phrase, p in zip(ALSA_PHRASES, paths)]


def eval_set(n_per_voice: int = 6, snrs: tuple[float, ...] = EVAL_SNRS, seed: int = 1234,
             include_real: bool = True, include_natural: bool = False, include_alsa: bool = False,
             real_draws: int = 1) -> list[EvalItem]:  # fmt: skip
    """TEST-ONLY voices (and the real recordings) in babble of TRAIN-voice talkers at each SNR.

    The babble talkers come from a seed no training run uses, so no babble waveform is shared
    with training; the target voices were never trained on. ``include_natural`` adds
    ``n_per_voice`` sentences of the natural TEST-ONLY voice after everything else, and
    ``include_alsa`` then the eight ALSA speaker-test phrases (:func:`alsa_recordings`, named
    ``alsa:...``), so the other items (levels, babble) are the same with or without them.
    ``real_draws`` > 1 hears each of the two real recordings in that many babble draws (and
    levels) per SNR, the extra ones last and from a generator of their own: two recordings make
    too few mixtures to tell one system from another, the draw moving their mean most.
    """
    if real_draws < 1:
        raise RcedError(f"eval_set: real_draws must be >= 1, got {real_draws}")
    utts = test_utterances(n_per_voice, seed)
    speech = [(f"{u.voice.id}#{i}", a) for i, (u, a) in enumerate(zip(utts, load_utterances(utts, desc="eval speech")))]
    real = real_recordings() if include_real else []
    speech += real
    if include_natural:
        nat = natural_test_utterances(n_per_voice, seed)
        audio = load_utterances(nat, desc="natural speech")
        speech += [(f"{u.voice.id}#{i}", a) for i, (u, a) in enumerate(zip(nat, audio))]
    if include_alsa:
        speech += [(f"alsa:{phrase.replace(' ', '_')}", a) for phrase, a in alsa_recordings()]
    babble_utts = train_utterances(60, seed + 99991)
    pool = load_utterances(babble_utts, desc="eval babble")

    def heard(name: str, clean: np.ndarray, gen: np.random.Generator) -> list[EvalItem]:
        """``clean`` at a level drawn from ``gen``, in a babble draw of its own at each SNR."""
        clean = clean / rms(clean) * 10 ** (float(gen.uniform(-28, -18)) / 20)
        return [EvalItem(name, snr, clean.astype(np.float32), mix(clean, make_babble(len(clean), pool, gen), snr))
                for snr in snrs]  # fmt: skip

    rng, more = np.random.default_rng(seed), np.random.default_rng([seed, 7])
    items = [it for name, clean in speech for it in heard(name, clean, rng)]
    items += [it for _draw in range(real_draws - 1) for name, clean in real for it in heard(name, clean, more)]
    return items
