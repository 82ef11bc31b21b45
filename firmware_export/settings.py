"""``<model>_settings.h``: every number the firmware needs to feed its model as training did.

The per-bin normalisation and the input quantisation are folded into one affine map per bin
(or mel band), so the device computes ``q = clamp(lroundf(kInputGain[k] * feature + kInputOffset[k]), -128, 127)``
with ``kInputGain[k] = 1 / (std[k] * scale)`` and ``kInputOffset[k] = zero_point - mean[k] / (std[k] * scale)``.
The raw mean/std and scale/zero-point are exported too, for checks.
"""

from __future__ import annotations

import numpy as np

from firmware_export import cgen
from firmware_export.flatbuffer import ModelInfo


def folded_affine(mean, std, scale: float, zero_point: int) -> tuple[np.ndarray, np.ndarray]:
    std = np.asarray(std, np.float64)
    gain = 1.0 / (std * scale)
    offset = zero_point - np.asarray(mean, np.float64) * gain
    return gain.astype(np.float32), offset.astype(np.float32)


def _io_block(info: ModelInfo) -> str:
    i, o = info.inputs[0], info.outputs[0]
    return (f"constexpr float kInputScale = {cgen.c_float(i.scale)};\n"
            f"constexpr int kInputZeroPoint = {i.zero_point};\n"
            f"constexpr float kOutputScale = {cgen.c_float(o.scale)};\n"
            f"constexpr int kOutputZeroPoint = {o.zero_point};\n"
            + cgen.ints("int", "kInputShape", i.shape) + cgen.ints("int", "kOutputShape", o.shape)
            + f"constexpr int kInputSize = {int(np.prod(i.shape))};\n"
            f"constexpr int kOutputSize = {int(np.prod(o.shape))};\n")  # fmt: skip


def _am_tracker_block(cfg) -> str:
    """Constants and recipe of the AM's level-tracker input channels (grammar.acoustic.features.with_trackers)."""
    n, groups = len(cfg.trackers or ()), cfg.tracker_groups
    head = (f"constexpr int kNumTrackers = {n};  // each gives kTrackerGroups input channels after the bands\n"
            f"constexpr int kTrackerBands = {cfg.tracker_bands or 0};\nconstexpr int kTrackerGroups = {groups};\n"
            f"constexpr int kInputChannels = {cfg.input_channels};  // kNumMels + kNumTrackers * kTrackerGroups\n")  # fmt: skip
    if not n:
        return head + "\n"
    return "".join([
        "// ---- level trackers, in float on the normalised bands x[m] = (feature[m] - kFeatureMean[m]) / kFeatureStd[m]:\n",
        "// group g's mean y[g] = (x[g * kTrackerBands] + ... + x[g * kTrackerBands + kTrackerBands - 1]) / kTrackerBands;\n",
        "// per tracker j a state s[j][g], set to the first frame's y[g] (the stream's, not a window's); then every\n",
        "// frame: d = y[g] - s[j][g]; s[j][g] += (d > 0 ? kTrackerRise[j] : kTrackerFall[j]) * d; and channel\n",
        "// kNumMels + j * kTrackerGroups + g of the frame is clamp(lroundf(s[j][g] / kInputScale) + kInputZeroPoint, -128, 127).\n",
        _tracker_tables(cfg, head),
    ])  # fmt: skip


def _tracker_tables(cfg, head: str) -> str:
    """The trackers' time constants, ``head`` (their counts) and their rise and fall gains, for both headers."""
    from rced.features import tracker_gains

    gains = tracker_gains(cfg)
    return "".join([
        f"// Time constants (s, rise / fall): {', '.join(f'{r:g} / {f:g}' for r, f in cfg.trackers)}.\n",
        head,
        cgen.floats("kTrackerRise", gains[:, 0], size="kNumTrackers"),
        cgen.floats("kTrackerFall", gains[:, 1], size="kNumTrackers"), "\n",
    ])  # fmt: skip


def _arena_block(arena: int, arena_min: int) -> str:
    return (f"// TFLM tensor arena: measured minimum {arena_min} bytes (host TFLM interpreter, bisection) plus a margin.\n"
            f"constexpr unsigned int kArenaSize = {arena};\nconstexpr unsigned int kArenaSizeMeasured = {arena_min};\n")  # fmt: skip


def _band_expansion_block(cfg) -> str:
    """bced: the model's band logits back to one mask value per bin, as the float model computes it."""
    from rced.features import config_expansion_taps

    first, w0, w1 = config_expansion_taps(cfg)
    act = ("m[k] = 1 / (1 + expf(-v[k]))  (the ratio mask)" if cfg.output == "mask" else
           "|S[k]| = max(v[k], 0); m[k] = clamp(|S[k]| / |X[k]|, 0, 1) (the ratio mask)")  # fmt: skip
    return "".join([
        "// z[b] = (q_out[b] - kOutputZeroPoint) * kOutputScale (band logits). Band expansion (the exact\n",
        "// inverse of the input's band compression for a constant mask): each bin takes two adjacent bands,\n",
        "//   v[k] = kExpandWeight0[k] * z[kExpandBand[k]] + kExpandWeight1[k] * z[kExpandBand[k] + 1]\n",
        f"//   {act}\n",
        f"constexpr int kNumBands = {cfg.n_bands};\n",
        cgen.ints("int16_t", "kExpandBand", first, size="kNumBins"),
        cgen.floats("kExpandWeight0", w0, size="kNumBins"),
        cgen.floats("kExpandWeight1", w1, size="kNumBins"),
    ])  # fmt: skip


def denoiser_settings_h(den, info: ModelInfo, arena: int, arena_min: int, silence_q: np.ndarray) -> str:
    from rced.features import LOG_EPS
    from rced.frontend import window

    cfg, fe = den.config, den.config.frontend
    i = info.inputs[0]
    gain, offset = folded_affine(den.norm.mean, den.norm.std, i.scale, i.zero_point)
    if cfg.input_feature == "log":
        feat = (f"// feature[k] = logf(|X[k]| + kLogEps)\nconstexpr float kLogEps = {cgen.c_float(LOG_EPS)};\n"
                "constexpr float kPowExponent = 0.0f;  // unused: log feature\n")  # fmt: skip
    else:
        feat = (f"// feature[k] = powf(|X[k]|, kPowExponent)\nconstexpr float kLogEps = 0.0f;  // unused\n"
                f"constexpr float kPowExponent = {cgen.c_float(float(cfg.input_feature[3:]))};\n")  # fmt: skip
    out_doc = ("// m[k] = (q_out[k] - kOutputZeroPoint) * kOutputScale (the ratio mask)"
               if cfg.output == "mask" else
               "// |S[k]| = (q_out[k] - kOutputZeroPoint) * kOutputScale; m[k] = clamp(|S[k]| / |X[k]|, 0, 1) (the ratio mask)")  # fmt: skip
    out_what = f"one {cfg.output} value per bin"
    if cfg.arch == "bced":
        out_what, out_doc = f"one logit per band ({cfg.n_bands} bands)", _band_expansion_block(cfg)
    gain_doc = ("// The listener's gain, per bin, frame by frame (state r[k] starts at 0; kMaskRelease == 0 skips it):\n"
                "//   r[k] = kMaskRelease * r[k] + (1 - kMaskRelease) * m[k];  m[k] = max(m[k], r[k])\n"
                "//   mask[k] = max(powf(m[k], kMaskExponent), kMaskFloor);  enhanced X[k] *= mask[k]\n")  # fmt: skip
    body = "".join([
        "// ---- STFT front-end (shared with the acoustic model: one FFT per hop)\n",
        f"constexpr int kSampleRate = {fe.sample_rate};\nconstexpr int kFftSize = {fe.n_fft};\n",
        f"constexpr int kHop = {fe.hop};\nconstexpr int kNumBins = {fe.n_bins};\n",
        f"constexpr int kContextFrames = {fe.context};  // current frame + {fe.context - 1} past frames\n",
        f"// Periodic {fe.window} window, used for analysis and for overlap-add synthesis. Frame t holds the\n",
        "// newest kHop samples at its end (causal). Synthesis divides the overlap-added frames by the sum of\n",
        "// squared windows (perfect reconstruction).\n",
        cgen.floats("kWindow", window(fe), size="kFftSize"), "\n",
        "// ---- features: compressed magnitude of the noisy STFT\n", feat,
        f"constexpr bool kLogFeature = {'true' if cfg.input_feature == 'log' else 'false'};\n\n",
        "// Per-bin normalisation statistics of the training set: x[k] = (feature[k] - kFeatureMean[k]) / kFeatureStd[k].\n",
        cgen.floats("kFeatureMean", den.norm.mean, size="kNumBins"),
        cgen.floats("kFeatureStd", den.norm.std, size="kNumBins"), "\n",
        "// Normalisation folded into the input quantisation, per bin:\n",
        "//   q[k] = clamp(lroundf(kInputGain[k] * feature[k] + kInputOffset[k]), -128, 127)\n",
        cgen.floats("kInputGain", gain, size="kNumBins"),
        cgen.floats("kInputOffset", offset, size="kNumBins"), "\n",
        "// Quantised feature of silence (|X| = 0): fills the context before the first frames arrive.\n",
        cgen.ints("int8_t", "kSilenceInput", silence_q, size="kNumBins"), "\n",
        _tracker_block(cfg),
        "// ---- model input/output. Input element [0][k][0][c] (offset k * kInputChannels + c) is bin k of\n",
        "// context frame c, oldest first (c = kContextFrames - 1 is the current frame); channels from\n",
        "// kContextFrames on are the level trackers (above), in order.\n",
        _io_block(info),
        f"// Output: {out_what} for the current frame.\n{out_doc}\n",
        f"constexpr bool kOutputIsMask = {'true' if cfg.output == 'mask' else 'false'};\n",
        gain_doc,
        f"constexpr float kMaskRelease = {cgen.c_float(cfg.mask_release)};\n",
        f"constexpr float kMaskExponent = {cgen.c_float(cfg.mask_exponent)};\n",
        f"constexpr float kMaskFloor = {cgen.c_float(cfg.mask_floor)};\n\n",
        _arena_block(arena, arena_min),
    ])  # fmt: skip
    doc = (f"denoiser ({cfg.arch}, width x{cfg.width_mult:g}): front-end and quantisation constants.\n"
           "Per hop: window the last kFftSize samples, FFT, |X|, feature, quantise into the newest context\n"
           "column, invoke, dequantise the mask, multiply the spectrum, inverse FFT, overlap-add.")  # fmt: skip
    return cgen.header("denoiser_settings.h", doc, body, namespace="stapes::denoiser")


def _tracker_block(cfg) -> str:
    """Constants and recipe of the denoiser's level-tracker input channels (rced.features.track)."""
    n = len(cfg.trackers or ())
    head = (f"constexpr int kNumTrackers = {n};  // input channels after the context frames\n"
            f"constexpr int kInputChannels = kContextFrames + kNumTrackers;\n")  # fmt: skip
    if not n:
        return head + "\n"
    return "".join([
        "// ---- level trackers: per tracker j and bin k a float state s[j][k], set to the first frame's\n",
        "// feature[k]; then every frame: d = feature[k] - s[j][k];\n",
        "//   s[j][k] += (d > 0 ? kTrackerRise[j] : kTrackerFall[j]) * d;\n",
        "// and s[j][k] is quantised like a feature (kInputGain, kInputOffset) into channel kContextFrames + j.\n",
        _tracker_tables(cfg, head),
    ])  # fmt: skip


def am_settings_h(am_cfg, am_norm, info: ModelInfo, arena: int, arena_min: int, silence_q: np.ndarray,
                  frames: int, input_mask_floor: float) -> str:  # fmt: skip
    from grammar.acoustic.features import LOG_FLOOR, mel_matrix
    from grammar.acoustic.int8 import ZERO_LOG_POSTERIOR, window_schedule
    from grammar.alphabet import BLANK_ID
    from grammar.decoding.recognizer import receptive_field_frames

    fe = am_cfg.frontend
    symbols = am_cfg.unit_set.symbols
    i, o = info.inputs[0], info.outputs[0]
    mel = mel_matrix(am_cfg.n_mels, fe.n_fft, fe.sample_rate, am_cfg.fmin)  # (bins, mels)
    gain, offset = folded_affine(am_norm.mean, am_norm.std, i.scale, i.zero_point)
    out_frames = int(o.shape[1])
    context, _, hop = window_schedule(am_cfg, frames)
    body = "".join([
        "// ---- front-end: the denoiser's STFT (stapes::denoiser::kWindow); the AM reads the ENHANCED magnitude\n",
        f"constexpr int kSampleRate = {fe.sample_rate};\nconstexpr int kFftSize = {fe.n_fft};\n",
        f"constexpr int kHop = {fe.hop};\nconstexpr int kNumBins = {fe.n_bins};\n",
        "// Y[k] = X[k] * max(m[k], kInputMaskFloor): the AM's own floor on the denoiser's ratio mask m[k],\n",
        "// without the listener's release and exponent (stapes::denoiser::kMaskRelease, kMaskExponent and\n",
        "// kMaskFloor make the listener's output; the AM and its threshold are calibrated behind this one).\n",
        f"constexpr float kInputMaskFloor = {cgen.c_float(input_mask_floor)};\n\n",
        "// ---- log-mel features: feature[m] = logf(sum_k |Y[k]|^2 * kMelMatrix[k * kNumMels + m] + kLogFloor)\n",
        f"constexpr int kNumMels = {am_cfg.n_mels};\nconstexpr float kMelFmin = {cgen.c_float(am_cfg.fmin)};\n",
        f"constexpr float kLogFloor = {cgen.c_float(LOG_FLOOR)};\n",
        "// HTK-scale triangular filters, unnormalised, [bin][mel] row-major.\n",
        cgen.floats("kMelMatrix", mel, size="kNumBins * kNumMels"), "\n",
        "// Per-band normalisation statistics: x[m] = (feature[m] - kFeatureMean[m]) / kFeatureStd[m].\n",
        cgen.floats("kFeatureMean", am_norm.mean, size="kNumMels"),
        cgen.floats("kFeatureStd", am_norm.std, size="kNumMels"), "\n",
        "// Normalisation folded into the input quantisation, per band:\n",
        "//   q[m] = clamp(lroundf(kInputGain[m] * feature[m] + kInputOffset[m]), -128, 127)\n",
        cgen.floats("kInputGain", gain, size="kNumMels"),
        cgen.floats("kInputOffset", offset, size="kNumMels"), "\n",
        _am_tracker_block(am_cfg),
        "// Quantised input frame of digital silence (golden case 1). Pad a window after the input's last frame\n",
        "// with kInputZeroPoint (normalised 0, nearest the float model's own zero padding) instead.\n",
        cgen.ints("int8_t", "kSilenceInput", silence_q, size="kInputChannels"), "\n",
        f"// ---- fixed window: the device model sees kWindowFrames STFT frames ({frames * fe.hop / fe.sample_rate:.3f} s)\n",
        "// at once and emits kOutputFrames posterior frames (one per kStride input frames). Input element\n",
        "// [0][t][0][c] (offset t * kInputChannels + c) is band c of frame t, oldest first; channels from\n",
        "// kNumMels on are the level trackers' (above).\n",
        f"constexpr int kWindowFrames = {frames};\nconstexpr int kStride = {am_cfg.stride};\n",
        f"constexpr int kOutputFrames = {out_frames};\n",
        "// Windows overlap: window j starts at input frame j * kWindowHop * kStride and contributes its output\n",
        "// frames [kWindowContext, kWindowContext + kWindowHop); window 0 starts on the first frame and gives\n",
        "// [0, kWindowContext + kWindowHop). When the input ends, one window on its last kWindowFrames frames\n",
        "// gives the frames not yet given (a shorter input: one window, padded after it with kInputZeroPoint).\n",
        "// kWindowContext is the AM's left reach and the window's last output frames cover its look-ahead, so\n",
        "// every frame a window contributes is the one the model gives on the whole input.\n",
        f"constexpr int kWindowContext = {context};\nconstexpr int kWindowHop = {hop};\n",
        f"constexpr int kReceptiveFieldFrames = {receptive_field_frames(am_cfg)};\n",
        f"constexpr float kLookaheadMs = {cgen.c_float(am_cfg.lookahead_ms)};\n\n",
        "// ---- model input/output. Output: softmax posteriors p = (q - kOutputZeroPoint) * kOutputScale,\n",
        "// [t][symbol]; for CTC use logf(max(p, kPosteriorFloor)): a posterior the int8 softmax rounds to 0\n"
        "// reads as the float AM's mean log-posterior below half an LSB (grammar.acoustic.int8.ZERO_LOG_POSTERIOR; half an\n"
        "// LSB made every ruled-out symbol cheap and windows took commands for others in continuous listening).\n",
        _io_block(info),
        f"constexpr float kPosteriorFloor = {cgen.c_float(float(np.exp(ZERO_LOG_POSTERIOR)))};\n",
        "// The decoder reads l[t][s] = logf(max(p, kPosteriorFloor)) as kPosteriorScale * l[t][s], minus\n"
        "// kBlankPenalty for s == kBlankId, renormalised per frame (subtract the log-sum-exp over s): a\n"
        "// temperature and a CTC blank penalty, which the grammar's thresholds were calibrated through.\n",
        f"constexpr float kPosteriorScale = {cgen.c_float(am_cfg.readout[0])};\n",
        f"constexpr float kBlankPenalty = {cgen.c_float(am_cfg.readout[1])};\n\n",
        f"// ---- alphabet{'' if am_cfg.unit_set.name == 'chars' else ' (ARPAbet phonemes)'}: symbol id -> text (id 0 is the CTC blank)\n",
        f"constexpr int kNumSymbols = {len(symbols)};\nconstexpr int kBlankId = {BLANK_ID};\n",
        cgen.strings("kAlphabet", symbols), "\n",
        _arena_block(arena, arena_min),
    ])  # fmt: skip
    doc = (f"acoustic model (CTC, {am_cfg.channels} channels, {am_cfg.blocks} blocks): feature and quantisation\n"
           "constants. Per hop: log-mel of the enhanced magnitude, quantise, append to the window; per window:\n"
           "invoke, read the posteriors, run the grammar decoder (grammar_data.h).")  # fmt: skip
    return cgen.header("am_settings.h", doc, body, namespace="stapes::am")
