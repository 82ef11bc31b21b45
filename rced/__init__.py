"""rced: the R-CED babble-noise denoiser and the audio foundations of stapes."""

from rced.audio import load_audio, write_audio
from rced.config import FrontendConfig, ModelConfig, TrainConfig
from rced.errors import RcedError

__all__ = ["Denoiser", "Config", "FrontendConfig", "ModelConfig", "TrainConfig", "RcedError",
           "load_audio", "write_audio"]  # fmt: skip

Config = ModelConfig


def __getattr__(name: str):
    if name == "Denoiser":  # lazy: importing TensorFlow costs seconds
        from rced.denoiser import Denoiser

        return Denoiser
    raise AttributeError(name)
