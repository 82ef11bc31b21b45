import math
from pathlib import Path

import pytest

from rced.evaluate import shown_path, summarize, to_markdown


def _recs(offset: float) -> list[dict]:
    """Two test voices at two SNRs and one real recording; metric = a known function of the item."""
    out = []
    for name in ("flite:rms#0", "flite:rms#1", "festival:ked_diphone#2", "real:pysptk"):
        for snr in (0.0, 5.0):
            v = snr + offset + (1.0 if name.startswith("festival") else 0.0)
            out.append({"name": name, "snr": snr, "pesq": v, "stoi": v / 10, "si_sdr": v})
    return out


def test_summarize_groups_and_gains():
    rows = summarize({"noisy": _recs(0.0), "model": _recs(2.0)})
    groups = list(dict.fromkeys(r["group"] for r in rows))
    assert groups == ["0 dB", "5 dB", "all (test voices)", "voice festival:ked_diphone", "voice flite:rms",
                      "real recordings"]  # fmt: skip
    by = {(r["group"], r["system"]): r for r in rows}
    for g in groups:
        assert by[(g, "noisy")]["d_pesq"] == 0.0
        assert by[(g, "model")]["d_si_sdr"] == pytest.approx(2.0)
        assert by[(g, "model")]["d_stoi"] == pytest.approx(0.2)
    assert by[("voice flite:rms", "noisy")]["n"] == 4 and by[("voice festival:ked_diphone", "noisy")]["n"] == 2
    assert by[("voice festival:ked_diphone", "model")]["pesq"] == pytest.approx(2.5 + 1.0 + 2.0)  # mean SNR + voice + offset
    assert by[("all (test voices)", "noisy")]["n"] == 6 and by[("real recordings", "noisy")]["n"] == 2
    assert not any(math.isnan(r["pesq"]) for r in rows)
    assert to_markdown(rows).count("\n") == len(rows) + 2


def test_one_voice_gets_no_voice_rows():
    recs = [r for r in _recs(0.0) if r["name"].startswith("flite")]
    assert not any(r["group"].startswith("voice ") for r in summarize({"noisy": recs}))


def test_natural_voice_and_each_recording_stand_apart():
    """The natural TEST-ONLY voice and the ALSA phrases are groups of their own, never in "all (test
    voices)" or the SNR rows;
    ``per_recording`` adds one row per real recording after their mean."""
    def recs(offset: float) -> list[dict]:
        out = _recs(offset)
        for name, bump in (("hibari:heart#0", 10.0), ("real:amfm_sample", 4.0), ("alsa:Front_Left", 7.0)):
            out += [{"name": name, "snr": snr, "pesq": snr + offset + bump, "stoi": 0.5, "si_sdr": snr + offset + bump}
                    for snr in (0.0, 5.0)]  # fmt: skip
        return out

    plain = summarize({"noisy": recs(0.0), "model": recs(1.0)})
    rows = summarize({"noisy": recs(0.0), "model": recs(1.0)}, per_recording=True)
    groups = list(dict.fromkeys(r["group"] for r in rows))
    assert groups == ["0 dB", "5 dB", "all (test voices)", "voice festival:ked_diphone", "voice flite:rms",
                      "real recordings", "recording amfm_sample", "recording pysptk", "natural TEST-ONLY voice",
                      "ALSA speaker-test phrases"]  # fmt: skip
    assert [r for r in rows if not r["group"].startswith("recording ")] == plain  # the per-recording rows only add
    by = {(r["group"], r["system"]): r for r in rows}
    assert by[("all (test voices)", "noisy")]["n"] == 6 and by[("0 dB", "noisy")]["n"] == 3
    without = {(r["group"], r["system"]): r for r in summarize({"noisy": _recs(0.0), "model": _recs(1.0)})}
    for g in ("0 dB", "5 dB", "all (test voices)", "voice flite:rms"):  # the synthetic rows do not move
        assert by[(g, "model")] == without[(g, "model")]
    assert by[("ALSA speaker-test phrases", "model")]["pesq"] == pytest.approx(2.5 + 1.0 + 7.0)
    assert by[("ALSA speaker-test phrases", "noisy")]["n"] == 2
    assert by[("natural TEST-ONLY voice", "noisy")]["n"] == 2
    assert by[("natural TEST-ONLY voice", "noisy")]["pesq"] == pytest.approx(12.5)
    assert by[("recording amfm_sample", "model")]["pesq"] == pytest.approx(7.5)
    assert by[("recording pysptk", "model")]["d_si_sdr"] == pytest.approx(1.0)
    assert by[("real recordings", "noisy")]["n"] == 4


def test_result_files_name_shipped_models_relative_to_the_repository(tmp_path, monkeypatch):
    import rced

    shipped = Path(rced.__file__).resolve().parent / "default_model"
    assert shown_path(shipped) == "rced/default_model"
    monkeypatch.chdir(shipped.parent)
    assert shown_path("default_model") == "rced/default_model"  # a relative path from anywhere inside
    assert shown_path(tmp_path) == str(tmp_path.resolve())  # a run folder elsewhere stays absolute
