"""``grammar augment`` and ``grammar dictionary build``: thin command-line layers over
:func:`grammar.augment.search.augment` and :mod:`grammar.augment.dictionary`.

``add_parsers(sub)`` adds both to the ``grammar`` parser's sub-commands. Inputs are checked
(budget, command file, manifest and its labels, dictionary file) before any model is loaded;
every problem is a one-line :class:`GrammarError` naming the file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from grammar.augment.dictionary import DICTIONARY_SEED
from grammar.errors import GrammarError
from rced.cli import positive_int


def _load_dictionary(path: str | None):
    from grammar.augment.dictionary import PronDict, default_dictionary_path

    if path is not None:
        return PronDict.load(path)
    default = default_dictionary_path()
    if not default.exists():
        raise GrammarError(f"{default}: no shipped pronunciation dictionary; give --dictionary "
                           "(make one with `grammar dictionary build -o dict.json`)")  # fmt: skip
    return PronDict.load(default)


def _shipped_grammar():
    from grammar.cli import _default_grammar
    from grammar.decoding.recognizer import default_grammar_path

    try:
        return _default_grammar()
    except GrammarError as exc:
        raise GrammarError(f"{default_grammar_path()}: no --target-far given and the shipped grammar's threshold "
                           f"is unavailable ({exc})") from None  # fmt: skip


def _base_far(commands, posteriors, labels, shipped) -> float:
    """FAR of the base grammar at the shipped threshold and score kind on this data set."""
    from grammar.decoding.decoder import Grammar, decode

    # the search's base: each command once, as written (its other spellings are candidates to it)
    base = Grammar.from_commands(commands, shipped.threshold, score_kind=shipped.score_kind, once="")
    non = [p for p, lab in zip(posteriors, labels) if lab is None]
    return sum(decode(p, base).accepted for p in non) / max(1, len(non))


def _character_recognizer(args: argparse.Namespace):
    """The chain of ``--am``; the dictionary and the search spell words in characters, so an AM of
    other units (benchmarks/am_levers.py chose characters) is refused in one line."""
    from grammar.cli import _recognizer

    rec = _recognizer(args, grammar=False)
    if rec.config.unit_set.name != "chars":
        raise GrammarError(f"{rec.path}: the acoustic model outputs {rec.config.unit_set.name}; pronunciation "
                           "dictionaries and augmentation work over characters")  # fmt: skip
    return rec


def cmd_augment(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from grammar.augment.search import augment, check_cem_options
    from grammar.cli import _emit, check_rate
    from grammar.commands import load_commands
    from grammar.dataset import check_labels, load_manifest
    from rced.audio import load_audio
    from rced.outputs import check_output_file

    check_rate("target-far", args.target_far)
    check_output_file(args.output, [p for p in (args.commands, args.dataset, args.dictionary) if p])
    commands = load_commands(args.commands)
    rows = load_manifest(args.dataset)  # empty manifest: GrammarError naming it
    check_labels(rows, commands, source=args.dataset)
    for kind, present in (("command", any(r.label is not None for r in rows)),
                          ("non-command", any(r.label is None for r in rows))):  # fmt: skip
        if not present:
            raise GrammarError(f"{args.dataset}: no {kind} utterances; the search needs both (objective and FAR)")
    if args.method == "cem":
        check_cem_options(args.samples, args.iters, args.elite_frac, args.smoothing)
    dictionary = _load_dictionary(args.dictionary)
    shipped = None if args.target_far is not None else _shipped_grammar()

    rec = _character_recognizer(args)
    posteriors = [rec.posteriors(load_audio(r.path), 16000, name=str(r.path))
                  for r in tqdm(rows, desc="acoustic model", unit="utt")]  # fmt: skip
    search_kwargs = ({"n_samples": args.samples, "iters": args.iters, "elite_frac": args.elite_frac,
                      "smoothing": args.smoothing} if args.method == "cem" else {})  # fmt: skip
    labels = [r.label for r in rows]
    if shipped is not None:  # the shipped threshold of this chain's backend (int8 has its own)
        shipped = rec.decoding_grammar(shipped)
    target_far, base_threshold = args.target_far, None
    if shipped is not None and shipped.score_kind == "len_norm":  # the search's score: the threshold carries over
        base_threshold = shipped.threshold
    elif shipped is not None:  # another score kind: carry over the base grammar's FAR instead
        target_far = _base_far(commands, posteriors, labels, shipped)
    g = augment(commands, posteriors, labels, dictionary, args.method, args.budget,
                target_far=target_far, base_threshold=base_threshold, top_k=args.top_k, seed=args.seed,
                search_kwargs=search_kwargs, dataset=str(args.dataset), progress=True)  # fmt: skip
    g.save(args.output)
    p = g.provenance
    payload = {"output": str(args.output), "method": args.method, "budget": args.budget,
               "n_expressions": len(g.expressions), "n_added": p["n_added"], "threshold": g.threshold,
               "target_far": p["target_far"], "objective": p["objective"], "base_objective": p["base_objective"],
               "far": p["result"]["far"], "mdr": p["result"]["mdr"], "mcr": p["result"]["mcr"],
               "search_seconds": p["search_seconds"], "evals_per_second": p["evals_per_second"]}  # fmt: skip
    _emit(args, payload,
          f"{args.method}: +{p['n_added']} expressions; MDR+MCR {p['base_objective']:.4f} -> {p['objective']:.4f} "
          f"at FAR {p['result']['far']:.4f} (target {p['target_far']:.4f}); written to {args.output}")  # fmt: skip
    return 0


def cmd_dictionary_build(args: argparse.Namespace) -> int:
    from grammar.augment.dictionary import build_default_pairs, build_dictionary
    from grammar.cli import _emit
    from rced.outputs import check_output_file

    check_output_file(args.output)
    rec = _character_recognizer(args)
    pairs = build_default_pairs(rec, n_utts=args.n_utts, seed=args.seed)
    prov = {"source": "build_default_pairs", "n_utts": args.n_utts, "seed": args.seed,
            "am": str(rec.path) if rec.path else "shipped",
            "denoiser": "none" if args.no_denoiser else (args.denoiser or "shipped"),
            "conditions": "each TRAIN-voice utterance clean and in babble at 5-20 dB"}  # fmt: skip
    d = build_dictionary(pairs, provenance=prov)
    d.save(args.output)
    tokens = sum(sum(c.values()) for c in d.counts.values())
    exact = sum(c.get(w, 0) for w, c in d.counts.items())
    payload = {"output": str(args.output), "n_words": len(d), "n_pairs": len(pairs), "n_word_tokens": tokens,
               "word_exact_rate": exact / tokens if tokens else None}  # fmt: skip
    _emit(args, payload, f"{len(d)} words from {len(pairs)} decodings ({exact / max(1, tokens):.1%} of word "
                         f"tokens decoded exactly); written to {args.output}")  # fmt: skip
    return 0


def add_parsers(sub) -> None:
    """Add ``augment`` and ``dictionary build`` to the ``grammar`` sub-command parsers."""
    from grammar.cli import _add_chain_args
    from rced.cli import add_command, output_path

    a = add_command(sub, "augment", "add alternate expressions that match the AM's errors (greedy or CEM)", [
        "grammar augment --commands my_commands.txt --dataset data/train/manifest.csv -o my_grammar.json",
        "grammar augment --commands my_commands.txt --dataset data/train/manifest.csv --method greedy --budget 3 "
        "-o g.json"],
        description="Search the dictionary's candidate expressions for the grammar that minimises MDR + MCR on "
                    "a data set, with FAR <= target (threshold re-calibrated per grammar) and at most --budget "
                    "extra expressions per command. Search on data of TRAIN voices (grammar make-dataset "
                    "--voices train) and evaluate on the TEST-ONLY voices.")  # fmt: skip
    a.add_argument("--commands", required=True, help="command file, one command a line")
    a.add_argument("--dataset", required=True, type=Path, help="manifest CSV (path,label,...) to search on")
    a.add_argument("--method", choices=["cem", "greedy"], default="cem",
                   help="cem: cross-entropy method over grammars; greedy: add the best candidate while it helps "
                        "(default %(default)s)")  # fmt: skip
    a.add_argument("--budget", type=positive_int, default=5,
                   help="extra expressions per command, at most; the base one is not counted (default %(default)s)")
    a.add_argument("--dictionary", default=None, help="pronunciation dictionary JSON (default: the shipped one)")
    a.add_argument("--top-k", type=positive_int, default=10, help="candidates per command (default %(default)s)")
    a.add_argument("--target-far", type=float, default=None,
                   help="false-alarm target (default: the base grammar's FAR at the shipped threshold)")
    a.add_argument("--seed", type=int, default=0, help="CEM's random draws (default %(default)s)")
    a.add_argument("--samples", type=int, default=256, help="CEM: grammars sampled per iteration (default %(default)s)")
    a.add_argument("--iters", type=int, default=50, help="CEM: iterations at most (default %(default)s)")
    a.add_argument("--elite-frac", type=float, default=0.1, help="CEM: elite fraction (default %(default)s)")
    a.add_argument("--smoothing", type=float, default=0.7,
                   help="CEM: weight of the elite mean in the update (default %(default)s)")
    a.add_argument("-o", "--output", required=True, type=output_path, help="augmented grammar JSON to write")
    _add_chain_args(a, grammar=False, backend=False, speech_check=False, json_help="print the search's result as one JSON object")
    a.set_defaults(func=cmd_augment)

    d = add_command(sub, "dictionary", "AM-specific statistical pronunciation dictionary", [
        "grammar dictionary build -o dict.json",
        "grammar augment --commands my_commands.txt --dataset data/train/manifest.csv --dictionary dict.json -o g.json"],
        description="How the acoustic model spells words: built by decoding speech, used by `grammar augment` "
                    "to propose alternate expressions. `grammar dictionary build --help` for its options.")  # fmt: skip
    dsub = d.add_subparsers(dest="dictionary_command", required=True, metavar="COMMAND",
                            help="build: decode speech and count how each word comes out")
    b = add_command(dsub, "build", "decode TRAIN-voice speech (clean and in babble) and count word decodings", [
        "grammar dictionary build -o dict.json",
        "grammar dictionary build -o dict_mine.json --am models/am_small --n-utts 500"],
        description="Decode synthetic TRAIN-voice utterances, each clean and in babble at 5-20 dB, with the "
                    "acoustic model (greedy CTC) and count, for every word, the spellings it comes out as: the "
                    "statistical pronunciation dictionary `grammar augment` draws candidates from.")  # fmt: skip
    b.add_argument("-o", "--output", required=True, type=output_path, help="dictionary JSON to write")
    b.add_argument("--n-utts", type=positive_int, default=2000,
                   help="utterances, each decoded clean and in babble (default %(default)s)")
    b.add_argument("--seed", type=int, default=DICTIONARY_SEED,
                   help="speech seed (default %(default)s: utterances the acoustic model never trained on)")
    _add_chain_args(b, grammar=False, backend=False, speech_check=False, json_help="print the dictionary's summary as one JSON object")
    b.set_defaults(func=cmd_dictionary_build)
