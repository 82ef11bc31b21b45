"""The denoiser as users call it: load a model folder, enhance audio offline or as a stream."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from rced.audio import resample, validate_audio
from rced.config import ModelConfig, load_json
from rced.errors import RcedError
from rced.features import Normalizer, model_inputs
from rced.frontend import istft, stft

CHUNK_FRAMES = 4096


def default_model_path() -> Path:
    """The shipped default model folder inside the package."""
    return Path(str(resources.files("rced") / "default_model"))


class Denoiser:
    """R-CED denoiser: masks the noisy STFT magnitude, keeps the noisy phase."""

    def __init__(self, model, config: ModelConfig, norm: Normalizer, path: Path | None = None):
        self.model = model
        self.config = config
        self.norm = norm
        self.path = path

    @classmethod
    def load(cls, path: str | Path | None = None) -> Denoiser:
        """Load a model folder (model.keras, config.json, norm.json); None = shipped default."""
        folder = Path(path) if path is not None else default_model_path()
        if not folder.is_dir():
            raise RcedError(f"{folder}: model folder not found")
        for name in ("model.keras", "config.json", "norm.json"):
            if not (folder / name).exists():
                raise RcedError(f"{folder}: model folder lacks {name}")
        config = load_json(ModelConfig, folder / "config.json")
        import keras

        try:
            model = keras.saving.load_model(folder / "model.keras", safe_mode=True, compile=False)
        except Exception as exc:  # keras raises many types for a bad file
            raise RcedError(f"{folder / 'model.keras'}: cannot load model ({str(exc).splitlines()[0][:120]})") from None
        return cls(model, config, Normalizer.load(folder / "norm.json"), folder)

    @property
    def sample_rate(self) -> int:
        return self.config.frontend.sample_rate

    def mask(self, noisy_mag: np.ndarray) -> np.ndarray:
        """(frames, bins) noisy magnitude -> (frames, bins) gain in [mask_floor, 1]."""
        out = np.empty_like(noisy_mag, dtype=np.float32)
        ctx = self.config.frontend.context
        for i0 in range(0, len(noisy_mag), CHUNK_FRAMES):
            lo = max(0, i0 - (ctx - 1))
            x = model_inputs(noisy_mag[lo : i0 + CHUNK_FRAMES], self.config, self.norm)[i0 - lo :]
            out[i0 : i0 + len(x)] = np.asarray(self.model(x, training=False))
        if self.config.output == "magnitude":
            out = np.clip(out / np.maximum(noisy_mag, 1e-8), 0.0, 1.0)
        return np.maximum(out, self.config.mask_floor)

    def enhance_stft(self, noisy_spec: np.ndarray) -> np.ndarray:
        return noisy_spec * self.mask(np.abs(noisy_spec))

    def denoise(self, audio: np.ndarray, sr: int) -> np.ndarray:
        """Enhance ``audio`` (mono, any rate); returns float32 at the model's sample rate."""
        audio = validate_audio(audio, "input")
        if audio.ndim != 1:
            raise RcedError(f"input: expected mono audio, got shape {audio.shape}")
        x = resample(audio, sr, self.sample_rate)
        fe = self.config.frontend
        return istft(self.enhance_stft(stft(x, fe)), fe, length=len(x))
