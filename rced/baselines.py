"""Reference denoisers to benchmark the R-CED model against.

Three rows for every results table, each answering a different question:

- :func:`spectral_subtraction`: the classical DSP baseline (minimum-statistics noise tracking,
  over-subtraction, spectral floor). A learned denoiser that cannot beat it is not worth its flash.
- :func:`oracle_irm`: the ideal ratio mask computed from the true clean and noise signals, the
  upper bound for any magnitude-only mask on this STFT front-end (R-CED's own output form).
- :class:`DTLN`: the pretrained peer model (Westhausen & Meyer 2020, TFLite pair in
  ``shared/peers/dtln``), a published real-time denoiser of similar size, run by our own loop.
- :class:`GTCRN`: the pretrained ultra-light peer (Rong et al. 2024, 48K parameters, about
  33 MMAC/s; ONNX graph in ``shared/peers/gtcrn``) through onnxruntime, the peer for the compute
  budget of a hearing aid.

The first two reuse :mod:`rced.frontend` so they see exactly the STFT the denoiser sees.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from scipy.ndimage import minimum_filter1d
from scipy.signal import lfilter

from rced.audio import validate_audio
from rced.config import FrontendConfig
from rced.errors import RcedError
from rced.frontend import istft, stft, window

_DEFAULT_FRONTEND = FrontendConfig()


def _mono(audio: np.ndarray, name: str) -> np.ndarray:
    """Validate a 1-D, non-empty, finite signal; float64 for the DSP below."""
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise RcedError(f"{name}: expected 1-D mono audio, got shape {audio.shape}")
    return validate_audio(audio, name).astype(np.float64)


def spectral_subtraction(
    noisy: np.ndarray,
    cfg: FrontendConfig = _DEFAULT_FRONTEND,
    *,
    alpha: float = 2.0,
    floor: float = 0.05,
    window_s: float = 1.5,
    smoothing: float = 0.85,
    bias: float = 2.0,
) -> np.ndarray:
    """Magnitude spectral subtraction with a minimum-statistics noise estimate (noisy phase).

    The noise power of each bin is the minimum of the recursively smoothed noisy power over the
    last ``window_s`` seconds (causal: frame t only uses frames <= t), times ``bias`` because the
    minimum of a fluctuating power under-estimates its mean (Martin 2001; for white Gaussian
    noise with the default smoothing and window, mean/minimum measures about 2.1). Speech
    pauses shorter than the window let the minimum find the noise floor without a voice-activity
    detector. The clean magnitude is then
    ``max(|Y| - alpha * sqrt(noise), floor * |Y|)``: over-subtraction (``alpha``) suppresses the
    noise peaks that would become musical noise, the floor keeps a little noise to mask the rest.
    Returns float32 of the input length.
    """
    x = _mono(noisy, "spectral_subtraction input")
    if not (alpha >= 0 and 0 <= floor <= 1 and window_s > 0 and 0 <= smoothing < 1 and bias > 0):
        raise RcedError("spectral_subtraction: need alpha>=0, 0<=floor<=1, window_s>0, 0<=smoothing<1, bias>0")
    spec = stft(x, cfg).astype(np.complex128)
    mag = np.abs(spec)
    power = mag**2
    # first-order recursive smoothing (causal), started at the first frame's power
    smoothed, _ = lfilter([1.0 - smoothing], [1.0, -smoothing], power, axis=0, zi=smoothing * power[:1])
    width = max(1, int(round(window_s * cfg.frame_rate)))
    # origin (width-1)//2 puts the window at [t-width+1, t]; 'nearest' repeats frame 0 (still causal)
    noise = bias * minimum_filter1d(smoothed, width, axis=0, mode="nearest", origin=(width - 1) // 2)
    clean_mag = np.maximum(mag - alpha * np.sqrt(noise), floor * mag)
    gain = np.divide(clean_mag, mag, out=np.zeros_like(mag), where=mag > 0)
    return istft(spec * gain, cfg, length=len(x))


def oracle_irm(clean: np.ndarray, noisy: np.ndarray, cfg: FrontendConfig = _DEFAULT_FRONTEND) -> np.ndarray:
    """Apply the ideal ratio mask sqrt(|S|^2 / (|S|^2 + |N|^2)), N = STFT(noisy - clean), to the noisy STFT.

    Needs the clean reference, so it is an upper bound, not a denoiser: the best any real-valued
    mask on this front-end can do with the noisy phase. Returns float32 of the input length.
    """
    s = _mono(clean, "oracle_irm clean")
    y = _mono(noisy, "oracle_irm noisy")
    if len(s) != len(y):
        raise RcedError(f"oracle_irm: clean has {len(s)} samples, noisy has {len(y)}")
    spec_s = stft(s, cfg).astype(np.complex128)
    spec_y = stft(y, cfg).astype(np.complex128)
    spec_n = stft(y - s, cfg).astype(np.complex128)
    ps, pn = np.abs(spec_s) ** 2, np.abs(spec_n) ** 2
    denom = ps + pn
    mask = np.sqrt(np.divide(ps, denom, out=np.zeros_like(ps), where=denom > 0))
    return istft(spec_y * mask, cfg, length=len(y))


class DTLN:
    """The pretrained DTLN peer (two TFLite stages), run block by block with explicit LSTM states.

    Stage 1 masks the magnitude of the 512-point rfft of each block (no window); stage 2 maps the
    masked block (noisy phase, irfft) through a learned basis; its 512-sample outputs are
    overlap-added with shift 128. State and signal tensors are told apart by shape (states are
    4-D), since their order differs between converter versions. Input must be 16 kHz mono.
    """

    sample_rate = 16000
    block_len = 512
    block_shift = 128
    latency = block_len - block_shift  # the raw output lags the input by this many samples

    def __init__(self, model_dir: str | os.PathLike | None = None, *, quantized: bool = False, num_threads: int = 1):
        """Load both stages from ``model_dir`` (default: ``../shared/peers/dtln`` from the working directory)."""
        from ai_edge_litert.interpreter import Interpreter

        from rced.runtime import silenced_stderr

        folder = Path(model_dir) if model_dir is not None else Path.cwd().parent / "shared" / "peers" / "dtln"
        if not folder.is_dir():
            raise RcedError(f"{folder}: DTLN model folder not found")
        names = ("model_quant_1.tflite", "model_quant_2.tflite") if quantized else ("model_1.tflite", "model_2.tflite")
        self.model_dir = folder
        self.quantized = quantized
        self._stages = []
        for name, width in zip(names, (self.block_len // 2 + 1, self.block_len), strict=True):
            path = folder / name
            if not path.is_file():
                raise RcedError(f"{path}: DTLN model file not found")
            try:
                with silenced_stderr():  # LiteRT announces its XNNPACK delegate on stderr
                    interp = Interpreter(model_path=str(path), num_threads=num_threads)
                    interp.allocate_tensors()
            except (RuntimeError, ValueError) as exc:
                msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise RcedError(f"{path}: cannot load TFLite model ({msg})") from None
            self._stages.append(self._bind(interp, path, width))

    @staticmethod
    def _bind(interp, path: Path, width: int) -> tuple:
        """Find (signal in, state in, signal out, state out) tensor details by shape."""

        def split(details: list[dict], kind: str) -> tuple[dict, dict]:
            sig = [d for d in details if tuple(d["shape"]) == (1, 1, width)]
            state = [d for d in details if len(d["shape"]) == 4]
            if len(details) != 2 or len(sig) != 1 or len(state) != 1:
                shapes = [tuple(int(v) for v in d["shape"]) for d in details]
                raise RcedError(f"{path}: unexpected {kind} tensors {shapes} (want (1, 1, {width}) and a 4-D state)")
            return sig[0], state[0]

        sig_in, state_in = split(interp.get_input_details(), "input")
        sig_out, state_out = split(interp.get_output_details(), "output")
        if tuple(state_in["shape"]) != tuple(state_out["shape"]):
            raise RcedError(f"{path}: state input and output shapes differ")
        return interp, sig_in, state_in, sig_out, state_out

    @staticmethod
    def _run(stage: tuple, frames: np.ndarray) -> np.ndarray:
        """Feed (n, width) frames through one stateful stage, state starting at zero."""
        interp, sig_in, state_in, sig_out, state_out = stage
        out = np.empty((frames.shape[0], int(sig_out["shape"][-1])), np.float32)
        state = np.zeros(state_in["shape"], np.float32)
        set_tensor, get_tensor, invoke = interp.set_tensor, interp.get_tensor, interp.invoke
        i_sig, i_state, o_sig, o_state = sig_in["index"], state_in["index"], sig_out["index"], state_out["index"]
        frames = np.ascontiguousarray(frames, np.float32)
        for t in range(frames.shape[0]):
            set_tensor(i_sig, frames[t].reshape(1, 1, -1))
            set_tensor(i_state, state)
            invoke()
            out[t] = get_tensor(o_sig)[0, 0]
            state = get_tensor(o_state)
        return out

    def process(self, audio: np.ndarray) -> np.ndarray:
        """Denoise 16 kHz mono audio; float32, same length as the input and aligned to it (lag removed).

        Stage 1 depends only on the input, so all its frames are computed first, then stage 2 runs
        on the masked blocks; this is identical to the interleaved streaming loop, just faster.
        """
        x = _mono(audio, "DTLN input")
        n, shift, blen = len(x), self.block_shift, self.block_len
        n_blocks = -(-(n + self.latency) // shift)
        padded = np.zeros((n_blocks - 1) * shift + blen)
        padded[self.latency : self.latency + n] = x  # zeros before: the empty start-up buffer
        idx = np.arange(n_blocks)[:, None] * shift + np.arange(blen)[None, :]
        spec = np.fft.rfft(padded[idx], axis=1)
        mask = self._run(self._stages[0], np.abs(spec))
        blocks = self._run(self._stages[1], np.fft.irfft(spec * mask, n=blen, axis=1))
        out = np.zeros((n_blocks - 1) * shift + blen)
        for k in range(blen // shift):  # overlap-add, vectorised over blocks, one pass per phase
            out[k * shift : k * shift + n_blocks * shift] += blocks[:, k * shift : (k + 1) * shift].reshape(-1)
        # block b covers padded[b*shift : b*shift+blen] = input [b*shift - latency, ...): aligned already
        return out[self.latency : self.latency + n].astype(np.float32)


class GTCRN:
    """The pretrained GTCRN peer (``gtcrn_dns3.onnx``, trained on DNS3) through onnxruntime, one thread.

    The graph maps the (1, 257, T, 2) real/imaginary STFT of 16 kHz audio to the enhanced one
    (a complex ratio mask inside). The STFT is the one it was trained with (its README, as
    ``torch.stft``/``torch.istft``): n_fft 512, hop 256, periodic sqrt-Hann window, centred frames
    with 256 reflected samples at each end, T = 1 + L // 256, inverse by windowed overlap-add
    divided by the overlap-added squared window. The model is causal in frames; with centred
    512-sample frames an output sample depends on the input up to 511 samples ahead.
    """

    sample_rate = 16000
    n_fft = 512
    hop = 256
    _WINDOW = window(FrontendConfig(n_fft=512, hop=256, window="sqrt_hann"))

    def __init__(self, model_dir: str | os.PathLike | None = None, *, model: str = "dns3", num_threads: int = 1):
        """Load ``gtcrn_<model>.onnx`` from ``model_dir`` (default: ``../shared/peers/gtcrn`` from the working directory)."""
        import onnxruntime as ort

        folder = Path(model_dir) if model_dir is not None else Path.cwd().parent / "shared" / "peers" / "gtcrn"
        if not folder.is_dir():
            raise RcedError(f"{folder}: GTCRN model folder not found")
        path = folder / f"gtcrn_{model}.onnx"
        if not path.is_file():
            raise RcedError(f"{path}: GTCRN model file not found")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = num_threads, 1
        opts.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for bad graphs
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise RcedError(f"{path}: cannot load ONNX model ({msg})") from None
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].shape[1] != self.n_fft // 2 + 1:
            shapes = [i.shape for i in inputs]
            raise RcedError(f"{path}: unexpected inputs {shapes} (want one (1, 257, T, 2) spectrum)")
        self._input = inputs[0].name
        self.model_path = path

    def _stft(self, x: np.ndarray) -> np.ndarray:
        """(L,) -> (257, 1 + L // 256) complex, centred frames with reflect padding."""
        half = self.n_fft // 2
        padded = np.pad(x, half, mode="reflect")
        idx = self.hop * np.arange(1 + len(x) // self.hop)[:, None] + np.arange(self.n_fft)[None, :]
        return np.fft.rfft(padded[idx] * self._WINDOW, axis=1).T

    def _istft(self, spec: np.ndarray, length: int) -> np.ndarray:
        """(257, T) complex -> (length,): windowed overlap-add over the squared-window envelope."""
        frames = np.fft.irfft(spec.T, n=self.n_fft, axis=1) * self._WINDOW
        t, hop = frames.shape[0], self.hop
        out, env = np.zeros((t + 1) * hop), np.zeros((t + 1) * hop)
        w2 = self._WINDOW**2
        for k in range(self.n_fft // hop):  # vectorised over frames, one pass per overlap phase
            out[k * hop : k * hop + t * hop] += frames[:, k * hop : (k + 1) * hop].reshape(-1)
            env[k * hop : k * hop + t * hop] += np.tile(w2[k * hop : (k + 1) * hop], t)
        keep = slice(self.n_fft // 2, self.n_fft // 2 + length)
        return out[keep] / env[keep]

    def process(self, audio: np.ndarray) -> np.ndarray:
        """Denoise 16 kHz mono audio (more than 256 samples) as a whole; float32, same length, aligned."""
        x = _mono(audio, "GTCRN input")
        if len(x) <= self.n_fft // 2:
            raise RcedError(f"GTCRN input: {len(x)} samples; need more than {self.n_fft // 2}")
        spec = self._stft(x)
        pair = np.stack([spec.real, spec.imag], axis=-1)[None].astype(np.float32)  # (1, 257, T, 2)
        enhanced = self._session.run(None, {self._input: pair})[0][0]
        return self._istft(enhanced[..., 0] + 1j * enhanced[..., 1], len(x)).astype(np.float32)
