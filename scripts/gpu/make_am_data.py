"""Prepare more AM training features (same recipe as ``grammar train-am``) for ``pack_am_data.py``.

``grammar train-am`` prepares its data from ``train_utterances(n, seed)`` for its seeds; this
does the same for other seeds, so the JAX trainer can see new TRAIN-voice utterances (new
texts, voices, rates) without touching a ``grammar train-am`` run folder. The enhanced features
are made the way the AM to be fine-tuned reads them (``--am``, default the shipped AM: its
``input_mask_floor``, through ``grammar.decoding.recognizer.am_front_end``).

Usage (repo root, on a machine with the TTS engines of ``scripts/setup.sh``):
    python scripts/gpu/make_am_data.py runs/am_more/am_data.npz --seeds 2 3 4 --n 4000
    python scripts/gpu/make_am_data.py runs/am_pico/am_data.npz --seeds 5 --n 3000 --pico 1500
    python scripts/gpu/make_am_data.py runs/am_kokoro/am_data.npz --seeds 5 --n 3000 --kokoro 1500
    python scripts/gpu/make_am_data.py runs/am_rev/am_data.npz --seeds 6 --n 1000 --kokoro 1500 --reverb-share 0.5
    python scripts/gpu/make_am_data.py runs/am_k32/am_data.npz --seeds 11 --n 0 --kokoro-more 2000 --reverb-share 0.3
    python scripts/gpu/make_am_data.py runs/am_cmd/am_data.npz --seeds 7 --n 3000 --pico 1000 \
        --commands grammar/data/commands_default.txt --command-share 0.5

``--reverb-share`` puts that share of the speech, and of the babble talkers, in simulated rooms
(``rced.rooms``, the whole response) before the babble is mixed in: real commands are spoken in
rooms, and the TTS voices are dry. ``--commands FILE --command-share S`` makes that share of the
texts one of the commands, alone or among common words: the TRAIN voices saying the product's
command words, which the Zipf-drawn sentences seldom hold.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import check_output, parser  # noqa: E402


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("out", type=Path, help="am_data.npz to write")
    ap.add_argument("--seeds", type=int, nargs="+", required=True, help="train_utterances(N, seed) plans")
    ap.add_argument("--n", type=int, default=4000, help="utterances per seed")
    ap.add_argument("--pico", type=int, default=0,
                    help="SVOX Pico TRAIN-voice utterances added to each seed's plan (train_utterances(N, seed, pico=P))")  # fmt: skip
    ap.add_argument("--kokoro", type=int, default=0,
                    help="Kokoro TRAIN-speaker utterances added to each seed's plan (train_utterances(N, seed, kokoro=K))")  # fmt: skip
    ap.add_argument("--kokoro-more", type=int, default=0,
                    help="utterances of the 32 Kokoro TRAIN speakers numbered after the dev block "
                         "(train_utterances(N, seed, kokoro_more=K))")  # fmt: skip
    ap.add_argument("--reverb-share", type=float, default=0.0,
                    help="share of the utterances and babble talkers heard in simulated rooms (rced.rooms)")
    ap.add_argument("--commands", type=Path, default=None,
                    help="command file (one a line) whose phrases --command-share of the texts become")
    ap.add_argument("--command-share", type=float, default=0.0,
                    help="share of the utterances that say a command, alone or among common words "
                         "(grammar.dataset.with_command_texts)")  # fmt: skip
    ap.add_argument("--nonspeech", type=int, default=0,
                    help="non-speech clips (rced.nonspeech: hum, noise, beeps, music; 1-4 s) added as negatives "
                         "with an empty transcript (all blank)")  # fmt: skip
    ap.add_argument("--data-seed", type=int, default=0, help="seed of the babble mixing")
    ap.add_argument("--am", type=Path, default=None,
                    help="AM folder whose config.json the features are for: its mel bands and its "
                         "input_mask_floor (default: the shipped AM, the one a warm start fine-tunes)")  # fmt: skip
    ap.add_argument("--denoiser", type=Path, default=None,
                    help="denoiser folder the enhanced features are made behind (default: the shipped one); "
                         "an AM to ship behind a new denoiser is fine-tuned on its features")  # fmt: skip
    args = ap.parse_args()
    if not 0.0 <= args.reverb_share <= 1.0:
        ap.error(f"--reverb-share {args.reverb_share}: expected a number in [0, 1]")
    if not 0.0 <= args.command_share <= 1.0:
        ap.error(f"--command-share {args.command_share}: expected a number in [0, 1]")
    if args.command_share and args.commands is None:
        ap.error("--command-share needs --commands FILE")
    commands = []
    if args.commands is not None:
        from grammar.commands import load_commands
        from grammar.errors import GrammarError

        try:
            commands = load_commands(args.commands)
        except GrammarError as exc:
            ap.error(str(exc))
    check_output(args.out)

    import dataclasses

    import numpy as np

    from grammar.acoustic.train_am import _save_npz, prepare_utterances
    from grammar.config import AMConfig, AMTrainConfig
    from grammar.decoding.recognizer import am_front_end, default_am_path
    from rced.config import load_json
    from rced.corpus import load_utterances, train_utterances
    from rced.denoiser import Denoiser
    from rced.rooms import in_rooms

    am_cfg = load_json(AMConfig, (args.am or default_am_path()) / "config.json")
    cfg = dataclasses.replace(AMTrainConfig(), am=am_cfg)
    print(f"AM features for {args.am or default_am_path()}: input_mask_floor {am_cfg.input_mask_floor}, "
          f"behind the denoiser {args.denoiser or 'shipped'}", flush=True)
    from grammar.dataset import with_command_texts

    utts = [u for s in args.seeds
            for u in with_command_texts(train_utterances(args.n, s, pico=args.pico, kokoro=args.kokoro,
                                                         kokoro_more=args.kokoro_more),
                                        commands, args.command_share, s)]  # fmt: skip
    audios = load_utterances(utts, desc="AM speech")
    texts = [u.text for u in utts]
    if args.nonspeech:
        from rced.nonspeech import nonspeech_clip

        seed0 = 100_000 * (args.data_seed % 10) + 1000 * args.seeds[0]  # below benchmarks/nonspeech.py's seeds
        rng = np.random.default_rng(seed0)
        audios += [nonspeech_clip(seed0 + i, float(rng.uniform(1, 4)))[0] for i in range(args.nonspeech)]
        texts += [""] * args.nonspeech
    pool = load_utterances(train_utterances(200, 777), desc="AM babble")
    mix_seed = args.data_seed + 1000 * args.seeds[0]
    if args.reverb_share:
        sr = am_cfg.frontend.sample_rate
        audios = in_rooms(audios, args.reverb_share, sr, seed=mix_seed)
        pool = in_rooms(pool, args.reverb_share, sr, seed=mix_seed + 1)
    den = am_front_end(Denoiser.load(args.denoiser), cfg.am)
    data = prepare_utterances(audios, texts, cfg, den, pool, mix_seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    _save_npz(args.out, data)
    print(f"wrote {args.out}: {len(data['labels'])} utterances")


if __name__ == "__main__":
    main()
