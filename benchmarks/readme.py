"""Copy every benchmark's Markdown result into README.md and benchmarks/LEVERS.md between its markers.

Run after the benchmarks: python benchmarks/readme.py  (results missing on disk are left as they are)
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
README = ROOT.parent / "README.md"
#: The files whose markers it fills: the README, and the acoustic model's lever runs.
DOCS = (README, ROOT / "LEVERS.md")
SECTIONS = ("targets", "denoise", "gain_shaping", "stream_memory", "speed", "listening", "spotting", "spellings", "recognition", "real_commands", "nonspeech", "speech_check", "nonspeech_lever", "am_lever_summary",
            "units", "voices", "am_update", "am_rooms", "am_commands", "am_longer", "am_stage6", "am_stage7", "nonspeech_stage7", "am_ensemble", "am_newmask", "am_trackers", "am_long_tracker", "am_self_distill", "am_rooms6", "am_floor", "rejection", "decoding_levers", "warp_sensitivity", "rooms", "augmentation", "export", "bundle_report", "denoiser_presets")


def fill(text: str, results: Path = ROOT / "results") -> str:
    """``text`` with each section's result between its markers (sections without both left as they are)."""
    for name in SECTIONS:
        result = results / f"{name}.md"
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        if not result.exists() or start not in text:
            continue
        head, rest = text.split(start, 1)
        text = head + start + "\n" + result.read_text().strip() + "\n" + rest[rest.index(end) :]
    return text


def main() -> int:
    for doc in DOCS:
        text = fill(doc.read_text())
        tmp = doc.with_suffix(".md.part")
        tmp.write_text(text)
        tmp.replace(doc)
    return 0

if __name__ == "__main__":
    sys.exit(main())
