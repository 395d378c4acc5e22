"""Music commands: ``seqmodels music train|eval|generate`` (the one-to-many piano-roll generator).

Data: a piano-roll JSON file (``{"train": [...], "valid": [...], "test": [...]}``, each sequence a list of
time steps of MIDI note numbers, as in ``shared/data/polyphonic``), a directory of MIDI files (with
``train/``, ``valid/``, ``test/`` sub-directories, or flat and then split at random with ``--seed``) or
one MIDI file. MIDI files are read at ``--steps-per-beat`` frames per quarter note.

A run directory written by ``train`` holds ``model/`` (the checkpoint), ``run.json`` (data, note range,
resolution, NLL per time step on each split) and ``loss.png``.

    seqmodels music train --data jsb_chorales.json --cell gru --hidden 46 --out runs/jsb
    seqmodels music eval runs/jsb
    seqmodels music generate runs/jsb --out song.mid --length 64 --seed 1
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..core.errors import CheckpointError, ConfigError, DataError
from ..data.midi import notes_to_roll, read_midi_roll, write_midi
from ..data.readers import read_piano_roll_json
from ..models.base import Model
from ..models.generator import SequenceGenerator
from ..training.loop import TrainConfig
from .common import resolve_checkpoint as _resolve_checkpoint
from .common import (add_model_arguments, add_training_arguments, cell_options, dtype_of, log, plot_history,
                     positive_float, positive_int, probability, train_config, write_json)

MODEL_SUBDIR = "model"
MIDI_SUFFIXES = (".mid", ".midi", ".smf")
SPLIT_NAMES = {"train": ("train",), "valid": ("valid", "validation", "dev"), "test": ("test",)}


# ------------------------------------------------------------------------------------------ data
def _midi_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in MIDI_SUFFIXES)


def load_music(path, *, steps_per_beat: float = 1, valid_fraction: float = 0.1, test_fraction: float = 0.1,
               seed: int = 0) -> dict[str, list[np.ndarray]]:
    """Read ``path`` into ``{"train"|"valid"|"test": [(T, 128) uint8 MIDI rolls]}`` (absent splits omitted)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"--data {path}: no such file or directory")
    if path.is_file() and path.suffix.lower() == ".json":
        raw = read_piano_roll_json(path)
        splits = {}
        for split, names in SPLIT_NAMES.items():
            key = next((n for n in names if n in raw), None)
            if key is not None:
                splits[split] = [notes_to_roll(seq, 128, 0, where=f"{path}: split {key!r}, sequence {i}")
                                 for i, seq in enumerate(raw[key])]
        if "train" not in splits:
            raise DataError(f"{path}: no 'train' split; found {sorted(raw)}")
        return splits
    if path.is_file():
        return {"train": [read_midi_roll(path, steps_per_beat)]}
    subdirs = {split: next((path / n for n in names if (path / n).is_dir()), None)
               for split, names in SPLIT_NAMES.items()}
    if subdirs["train"] is not None:
        splits = {s: [read_midi_roll(f, steps_per_beat) for f in _midi_files(d)]
                  for s, d in subdirs.items() if d is not None}
    else:
        files = _midi_files(path)
        if not files:
            raise DataError(f"{path}: no MIDI files (*.mid, *.midi) and no train/ sub-directory")
        rolls = [read_midi_roll(f, steps_per_beat) for f in files]
        order = np.random.default_rng(seed).permutation(len(rolls))
        n_test = int(round(len(rolls) * test_fraction))
        n_valid = int(round(len(rolls) * valid_fraction))
        if len(rolls) - n_test - n_valid < 1:
            n_test = n_valid = 0
        splits = {"test": [rolls[i] for i in order[:n_test]],
                  "valid": [rolls[i] for i in order[n_test:n_test + n_valid]],
                  "train": [rolls[i] for i in order[n_test + n_valid:]]}
    splits = {k: v for k, v in splits.items() if v}
    if "train" not in splits:
        raise DataError(f"{path}: no training sequences found")
    return splits


def note_range(spec: str, splits: dict) -> tuple[int, int]:
    """``piano`` (21..108), ``auto`` (lowest..highest note in the data) or ``LOW-HIGH`` -> (offset, count)."""
    if spec == "piano":
        return 21, 88
    if spec == "auto":
        used = np.zeros(128, bool)
        for rolls in splits.values():
            for r in rolls:
                used |= r.any(axis=0).astype(bool)
        if not used.any():
            raise DataError("--notes auto: the data has no notes at all")
        lo, hi = int(np.flatnonzero(used)[0]), int(np.flatnonzero(used)[-1])
        return lo, hi - lo + 1
    try:
        lo, hi = (int(v) for v in spec.split("-"))
    except ValueError:
        raise ConfigError(f"--notes: expected 'piano', 'auto' or LOW-HIGH (e.g. 36-96), got {spec!r}") from None
    if not 0 <= lo <= hi <= 127:
        raise ConfigError(f"--notes: expected 0 <= LOW <= HIGH <= 127, got {spec!r}")
    return lo, hi - lo + 1


def resolve_checkpoint(path) -> Path:
    """A run directory (holding model/) or a checkpoint directory -> the checkpoint directory."""
    return _resolve_checkpoint(path, "music train")

def load_run(path) -> tuple[SequenceGenerator, dict]:
    """The generator of a run (or checkpoint) directory and its ``run.json`` (empty when absent)."""
    model = Model.load(resolve_checkpoint(path))
    if not isinstance(model, SequenceGenerator):
        raise CheckpointError(f"{path}: holds a {model.kind!r} model, expected a sequence generator "
                              "(trained with 'seqmodels music train')")
    run_file = Path(path) / "run.json"
    return model, json.loads(run_file.read_text()) if run_file.is_file() else {}


# ------------------------------------------------------------------------------------- commands
def cmd_train(args) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory")
    if (out / MODEL_SUBDIR / "checkpoint.json").exists() and not (args.force or args.resume):
        raise ConfigError(f"--out {out}: already holds a trained model; use --resume to continue it or --force "
                          "to replace it")
    resume = None
    if args.resume:                                         # the data settings of the run being continued
        run_file = out / "run.json"
        if not run_file.is_file():
            raise CheckpointError(f"{out}: no run.json; --resume expects a run directory of 'music train'")
        for key, value in json.loads(run_file.read_text()).get("data_config", {}).items():
            setattr(args, key, value)
    splits = load_music(args.data, steps_per_beat=args.steps_per_beat, valid_fraction=args.valid_fraction,
                        test_fraction=args.test_fraction, seed=args.seed)
    if args.resume:
        model, resume = Model.load(resolve_checkpoint(out), return_checkpoint=True)
        if not isinstance(model, SequenceGenerator):
            raise CheckpointError(f"{out}: holds a {model.kind!r} model, expected a sequence generator")
        config = TrainConfig.from_dict(resume.meta["train_config"])
        if args.steps:                                      # continue past the planned end
            config = TrainConfig.from_dict({**config.to_dict(), "steps": args.steps})
    else:
        offset, count = note_range(args.notes, splits)
        model = SequenceGenerator(count, args.cell, args.hidden, args.layers, note_offset=offset,
                                  dropout=args.dropout, dtype=dtype_of(args), seed=args.seed, **cell_options(args))
    data = {k: model.encode_all(v, name=f"{args.data} [{k}]") for k, v in splits.items()}
    train = model.batcher(data["train"], batch_size=args.batch_size, seed=args.seed)
    if not args.resume:
        config = train_config(args, total_steps=args.steps or len(train) * args.epochs)
        if config.eval_every == 0 and "valid" in data:
            config = TrainConfig.from_dict({**config.to_dict(), "eval_every": len(train)})
    lo, hi = model.note_range
    log(f"seqmodels music train: {model.cell} {model.num_layers}x{model.hidden_size}, notes {lo}..{hi} "
        f"({model.num_notes}), {model.num_parameters():,} parameters; "
        + ", ".join(f"{k} {len(v)} sequences / {sum(r.shape[0] for r in v)} steps" for k, v in data.items()))
    out.mkdir(parents=True, exist_ok=True)
    data_config = {k: getattr(args, k) for k in ("steps_per_beat", "valid_fraction", "test_fraction", "seed",
                                                 "batch_size")}
    info = {"data": str(args.data), **data_config, "data_config": data_config, "note_range": [lo, hi],
            "parameters": model.num_parameters()}
    write_json(out / "run.json", info)                      # now, so that an interrupted run can resume
    history = model.fit(train, data.get("valid"), config=config, checkpoint_dir=out / MODEL_SUBDIR,
                        progress=not args.no_progress, resume=resume)
    info.update(nll_per_step={k: model.evaluate(v) for k, v in data.items()}, history=history.to_dict())
    write_json(out / "run.json", info)
    nll = info["nll_per_step"]
    png = plot_history(history, out / "loss.png", title=f"{model.cell} music generator (NLL per time step)")
    log(f"done: {history.step} steps in {history.seconds:.1f}s; saved to {out / MODEL_SUBDIR}"
        + (f", loss curve {png}" if png else ""))
    for k, v in nll.items():
        print(f"{k}: NLL per time step {v:.4f} nats ({sum(r.shape[0] for r in data[k])} steps)")
    return 130 if history.interrupted else 0


def cmd_eval(args) -> int:
    model, run = load_run(args.model)
    source = args.data or run.get("data")
    if source is None:
        raise ConfigError(f"{args.model}: no run.json naming the training data; pass --data")
    splits = load_music(source, steps_per_beat=args.steps_per_beat or run.get("steps_per_beat", 1),
                        valid_fraction=run.get("valid_fraction", 0.1), test_fraction=run.get("test_fraction", 0.1),
                        seed=run.get("seed", 0))
    names = [args.split] if args.split else [s for s in ("train", "valid", "test") if s in splits]
    for name in names:
        if name not in splits:
            raise DataError(f"{source}: no {name!r} split; found {sorted(splits)}")
        rolls = model.encode_all(splits[name], name=f"{source} [{name}]")
        nll = model.evaluate(rolls)
        print(f"{name}: NLL per time step {nll:.4f} nats over {sum(r.shape[0] for r in rolls)} steps "
              f"({len(rolls)} sequences)")
    return 0


def cmd_generate(args) -> int:
    model, run = load_run(args.model)
    spb = args.steps_per_beat or run.get("steps_per_beat", 1)
    if spb != int(spb):
        raise ConfigError(f"--steps-per-beat: MIDI output needs a whole number of steps per beat, got {spb}")
    primer = None
    if args.primer:
        roll = read_midi_roll(args.primer, spb)
        primer = model.encode(roll[:args.primer_steps] if args.primer_steps else roll, where=f"--primer {args.primer}")
    rolls = model.generate(args.num, args.length, primer=primer, seed=args.seed, temperature=args.temperature)
    out = Path(args.out)
    for i, roll in enumerate(rolls):
        full = roll if primer is None or not args.include_primer else np.concatenate([primer, roll])
        path = out if args.num == 1 else out.with_name(f"{out.stem}-{i + 1}{out.suffix}")
        write_midi(path, full, note_offset=model.note_offset, steps_per_beat=int(spb), bpm=args.bpm,
                   program=args.program)
        print(f"{path}: {full.shape[0]} steps, {full.sum(axis=1).mean():.2f} notes per step, MIDI notes "
              f"{model.note_range[0]}..{model.note_range[1]}")
    return 0


def register(sub) -> None:
    top = sub.add_parser("music", help="polyphonic music generation (piano rolls, MIDI): train, eval, generate",
                         description="An RNN over piano-roll frames (one sigmoid per note) that learns to "
                                     "predict the next frame and composes by sampling.")
    cmds = top.add_subparsers(dest="music_command", metavar="{train,eval,generate}")
    cmds.required = True

    p = cmds.add_parser("train", help="train a generator on piano-roll JSON or MIDI files")
    p.add_argument("--data", required=True, help="piano-roll JSON, a directory of MIDI files, or one MIDI file")
    p.add_argument("--out", required=True, help="run directory (model/, run.json, loss.png)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out where it stopped (to its planned length, or to --steps)")
    p.add_argument("--force", action="store_true", help="replace a model already in --out")
    p.add_argument("--notes", default="piano",
                   help="note range: 'piano' (MIDI 21..108, default), 'auto' (the data's range) or LOW-HIGH")
    p.add_argument("--steps-per-beat", type=positive_float, default=1.0,
                   help="MIDI input: frames per quarter note (default 1)")
    p.add_argument("--valid-fraction", type=probability, default=0.1, help="flat MIDI directory: validation share")
    p.add_argument("--test-fraction", type=probability, default=0.1, help="flat MIDI directory: test share")
    add_model_arguments(p, cell="lstm", hidden=64, layers=1)
    add_training_arguments(p, epochs=50, lr=2e-3, batch=8, optimizer="rmsprop", clip="norm", clip_value=1.0)
    p.set_defaults(func=cmd_train)

    p = cmds.add_parser("eval", help="NLL per time step on the splits of the data")
    p.add_argument("model", help="run or checkpoint directory")
    p.add_argument("--data", default=None, help="data to score (default: the run's training data)")
    p.add_argument("--split", choices=("train", "valid", "test"), default=None, help="one split (default: all)")
    p.add_argument("--steps-per-beat", type=positive_float, default=None, help="MIDI input resolution")
    p.set_defaults(func=cmd_eval)

    p = cmds.add_parser("generate", help="compose and write a MIDI file")
    p.add_argument("model", help="run or checkpoint directory")
    p.add_argument("--out", required=True, help="MIDI file to write (with --num N: NAME-1.mid ... NAME-N.mid)")
    p.add_argument("--length", type=positive_int, default=64, help="time steps to generate (default 64)")
    p.add_argument("--num", type=positive_int, default=1, help="number of pieces")
    p.add_argument("--seed", type=int, default=None, help="seed of the sampler (same seed, same music)")
    p.add_argument("--temperature", type=positive_float, default=1.0, help="< 1: more conservative")
    p.add_argument("--primer", default=None, help="a MIDI file to continue")
    p.add_argument("--primer-steps", type=positive_int, default=None, help="use only its first N steps")
    p.add_argument("--include-primer", action="store_true", help="write the primer before the continuation")
    p.add_argument("--steps-per-beat", type=positive_float, default=None, help="default: the run's resolution")
    p.add_argument("--bpm", type=positive_float, default=100.0, help="tempo of the MIDI file (default 100)")
    p.add_argument("--program", type=int, choices=range(128), metavar="0..127", default=0,
                   help="General MIDI instrument (0 = piano, 19 = church organ)")
    p.set_defaults(func=cmd_generate)
