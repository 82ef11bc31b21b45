"""The demo folders both demos write (rced.demo): a page whose links and result.json paths are
relative to it, players that load their metadata, a readable spectrogram, atomic writes."""

from __future__ import annotations

import io
import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from rced.demo import PNG_DPI, players_html, relative_to_page, spectrogram_png, write_demo_folder

PATH_KEYS = ("model", "am", "denoiser")  # result.json entries that name a model folder


class PageRefs(HTMLParser):
    """Every src/href of a page, and each <audio> element's attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.audio: list[dict] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.refs += [a[k] for k in ("src", "href") if a.get(k)]
        if tag == "audio":
            self.audio.append(a)


def check_demo_page(out: Path) -> tuple[PageRefs, dict]:
    """The checks every demo folder passes; returns the page's references and result.json."""
    refs = PageRefs()
    refs.feed((out / "index.html").read_text())
    for ref in refs.refs:
        assert not urlparse(ref).scheme and not ref.startswith("/"), ref  # relative to the page
        assert (out / ref).is_file(), ref  # ... and it resolves from there
    assert refs.audio and all(a.get("preload") == "metadata" and "controls" in a for a in refs.audio)
    result = json.loads((out / "result.json").read_text())
    paths = list(result["files"].values()) + [result[k] for k in PATH_KEYS if result.get(k)]
    for p in paths:
        assert not Path(p).is_absolute() and (out / p).exists(), p
    assert set(result["files"].values()) <= {p.name for p in out.iterdir()}
    assert not [p for p in out.iterdir() if p.name.endswith(".part")]  # atomic writes leave nothing behind
    return refs, result


def test_relative_to_page_resolves_from_the_page(tmp_path):
    model = tmp_path / "models" / "m"
    model.mkdir(parents=True)
    out = tmp_path / "a" / "b"
    rel = relative_to_page(model, out)
    assert rel == "../../models/m"
    assert (out / rel).resolve() == model.resolve()


def test_players_preload_metadata_and_escape():
    page = players_html({"a": "a b&c.wav"}, [("a", "<clean>")])
    p = PageRefs()
    p.feed(page)
    assert p.refs == ["a b&c.wav"] and p.audio[0]["preload"] == "metadata"
    assert "&lt;clean&gt;" in page


def test_write_demo_folder(tmp_path):
    from rced.config import FrontendConfig
    from rced.frontend import stft

    model = tmp_path / "model"
    model.mkdir()
    out = tmp_path / "out"
    x = (np.random.default_rng(0).standard_normal(8000) * 0.05).astype(np.float32)
    fe = FrontendConfig()
    png = spectrogram_png([("noisy", stft(x, fe)), ("enhanced", stft(0.5 * x, fe))], 16000, fe.hop, title="t")
    result = {"model": relative_to_page(model, out)}
    page = '<audio controls preload="metadata" src="clean.wav"></audio><img src="spectrogram.png">'
    files = write_demo_folder(out, {"clean": x, "noisy": x}, 16000, png, result, lambda r: page)
    assert files == result["files"] and files["clean"] == "clean.wav" and files["index"] == "index.html"
    _, saved = check_demo_page(out)
    assert saved == result


def test_spectrogram_is_readable():
    """Drawn at full size (14 in at PNG_DPI: the labels' point sizes hold), one panel per input."""
    from PIL import Image

    spec = np.abs(np.random.default_rng(1).standard_normal((200, 129))) + 0j
    sizes = [Image.open(io.BytesIO(spectrogram_png([("a", spec)] * n, 16000, 128))).size for n in (1, 3)]
    assert sizes[0][0] == 14 * PNG_DPI and sizes[1][1] > 2 * sizes[0][1]


@pytest.mark.parametrize("bad", ["file", "below_file"])
def test_demo_refuses_an_output_it_cannot_write_before_any_work(tmp_path, bad):
    from tests.rced.test_cli import assert_one_line_error, rced

    f = tmp_path / "taken"
    f.write_text("x")
    out = f if bad == "file" else f / "sub"
    res = rced("demo", "-o", out)
    assert_one_line_error(res, str(out))  # one line: no progress line came first, nothing was synthesized
    assert f.read_text() == "x"


def test_demo_on_the_int8_denoiser(tmp_path):
    """``--backend int8`` streams through model_int8.tflite (the device graph) and says so on the page."""
    from tests.rced.test_cli import rced

    out = tmp_path / "d8"
    res = rced("demo", "-o", out, "--backend", "int8", "--json")
    assert res.returncode == 0, res.stderr
    _, saved = check_demo_page(out)
    assert saved["backend"] == "int8" and "(int8)" in (out / "index.html").read_text()
    assert saved["enhanced"]["si_sdr"] > saved["noisy"]["si_sdr"] + 1  # measured +2.17 dB on the default example
