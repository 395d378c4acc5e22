"""Chung et al. 2014 on JSB Chorales: tanh RNN vs GRU vs LSTM of about 20k parameters each.

Protocol (as in the paper): 88-note piano-roll frames (MIDI 21..108, one frame per quarter note,
Boulanger-Lewandowski's splits), one recurrent layer of 100 tanh / 46 GRU / 36 LSTM units, a sigmoid per
note, RMSProp, gradient norm clipped at 1, early stopping on the validation NLL; reported: the test
negative log-likelihood per time step (summed over notes, averaged over all time steps of all test
sequences). Published (Chung et al. 2014, Table 2, test): tanh 9.10, GRU 8.54, LSTM 8.67.

Then the best model composes a chorale, saved as a MIDI file and read back with the project's own reader
(the roll must come back identical), with a picture of its piano roll.

    OPENBLAS_NUM_THREADS=1 python benchmarks/jsb_chorales.py                 # all three, ~2 min each
    OPENBLAS_NUM_THREADS=1 python benchmarks/jsb_chorales.py --cells gru --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from seqmodels.data.midi import read_midi_roll, write_midi  # noqa: E402
from seqmodels.data.readers import read_piano_roll_json  # noqa: E402
from seqmodels.models.generator import SequenceGenerator  # noqa: E402

SIZES = {"rnn": 100, "gru": 46, "lstm": 36}
LR = {"rnn": 1e-3, "gru": 3e-3, "lstm": 3e-3}
PUBLISHED = {"rnn": 9.10, "gru": 8.54, "lstm": 8.67}
NAMES = {"rnn": "tanh RNN", "gru": "GRU", "lstm": "LSTM"}


def run(cell: str, data: dict, args, seed: int) -> tuple[dict, SequenceGenerator]:
    model = SequenceGenerator(88, cell, SIZES[cell], note_offset=21, dropout=args.dropout, seed=seed)
    train = model.batcher(data["train"], batch_size=args.batch_size, seed=seed)
    t0 = time.perf_counter()
    schedule = None
    if args.halflife:
        schedule = {"name": "exponential", "gamma": 0.5, "decay_steps": args.halflife * len(train)}
    history = model.fit(train, data["valid"], optimizer="rmsprop", lr=args.lr or LR[cell], schedule=schedule,
                        clip="norm",
                        clip_value=1.0, epochs=args.epochs, eval_every=len(train) * args.eval_epochs,
                        patience=args.patience, progress=False, average=args.average or None)
    seconds = time.perf_counter() - t0
    result = {
        "cell": cell, "units": SIZES[cell], "parameters": model.num_parameters(), "seed": seed,
        "lr": args.lr or LR[cell], "lr_halflife_epochs": args.halflife, "batch_size": args.batch_size,
        "dropout": args.dropout, "average": args.average, "eval_epochs": args.eval_epochs,
        "epochs_run": history.step / len(train), "best_epoch": history.best_step / len(train),
        "train_nll": model.evaluate(data["train"]), "valid_nll": model.evaluate(data["valid"]),
        "test_nll": model.evaluate(data["test"]), "published_test_nll": PUBLISHED[cell],
        "seconds": round(seconds, 1),
        "val_curve": [[s / len(train), v] for s, v in history.val_loss],
    }
    print(f"{NAMES[cell]:8s} {SIZES[cell]:3d} units {result['parameters']:6d} params  seed {seed}: "
          f"test NLL {result['test_nll']:.3f} (valid {result['valid_nll']:.3f}, train {result['train_nll']:.3f}, "
          f"best epoch {result['best_epoch']:.0f}, {seconds:.0f} s)  published {PUBLISHED[cell]}", flush=True)
    return result, model


def _rel(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def compose(model: SequenceGenerator, out: Path, length: int, seed: int) -> dict:
    """Generate a chorale, write it as MIDI, read it back with our reader, draw its piano roll."""
    roll = model.generate(1, length, seed=seed)[0]
    midi_path = out / "chorale.mid"
    write_midi(midi_path, roll, note_offset=model.note_offset, steps_per_beat=1, bpm=72, program=19)
    back = read_midi_roll(midi_path, steps_per_beat=1)
    lo, hi = model.note_range
    same = back.shape == (length, 128) and bool((back[:, lo:hi + 1] == roll).all()) \
        and not back[:, :lo].any() and not back[:, hi + 1:].any()
    info = {"midi": _rel(midi_path), "length": length, "seed": seed, "bytes": midi_path.stat().st_size,
            "read_back_identical": same, "mean_notes_per_step": float(roll.sum(1).mean())}
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        notes = np.flatnonzero(roll.any(0))
        rows = slice(max(notes.min() - 2, 0), notes.max() + 3) if notes.size else slice(0, 88)
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.imshow(roll[:, rows].T, aspect="auto", origin="lower", cmap="Greys", interpolation="nearest",
                  extent=(-0.5, length - 0.5, rows.start + lo - 0.5, rows.stop + lo - 0.5))
        ax.set_xlabel("time step (quarter notes)")
        ax.set_ylabel("MIDI note")
        ax.set_title(f"A generated chorale ({NAMES[model.cell]}, seed {seed})")
        fig.tight_layout()
        fig.savefig(out / "chorale.png", dpi=110)
        plt.close(fig)
        info["png"] = _rel(out / "chorale.png")
    except ImportError:
        pass
    return info


def plot_curves(results: list[dict], out: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    colors = {"rnn": "C0", "gru": "C3", "lstm": "C2"}
    for r in results:
        c = np.array(r["val_curve"])
        first = r is next(q for q in results if q["cell"] == r["cell"])
        ax.plot(c[:, 0], c[:, 1], color=colors[r["cell"]], alpha=0.8,
                label=f"{NAMES[r['cell']]} ({r['parameters']:,} params)" if first else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation NLL per time step")
    ax.set_ylim(8.2, 10.5)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("JSB Chorales: validation NLL, RNN vs GRU vs LSTM (one line per seed)")
    fig.tight_layout()
    fig.savefig(out / "jsb_validation.png", dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "polyphonic" / "jsb_chorales.json"))
    p.add_argument("--cells", nargs="+", choices=tuple(SIZES), default=list(SIZES))
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--epochs", type=int, default=400, help="upper bound; early stopping ends sooner")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=None, help="RMSProp rate (default: per cell, see LR)")
    p.add_argument("--halflife", type=int, default=0, help="halve the learning rate every N epochs (0: constant)")
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--eval-epochs", type=int, default=5, help="validate every N epochs")
    p.add_argument("--average", type=float, default=0.0,
                   help="decay of a moving average of the weights (validated, kept at the end); 0: off")
    p.add_argument("--patience", type=int, default=6, help="stop after N validations without improvement")
    p.add_argument("--length", type=int, default=64, help="time steps of the generated chorale")
    p.add_argument("--out", default=str(REPO / "docs" / "music"))
    p.add_argument("--no-compose", action="store_true")
    args = p.parse_args(argv)
    data = read_piano_roll_json(args.data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results, best = [], None
    for cell in args.cells:
        for seed in args.seeds:
            result, model = run(cell, data, args, seed)
            results.append(result)
            if best is None or result["valid_nll"] < best[0]:
                best = (result["valid_nll"], model)
    report = {"protocol": "88 notes, RMSProp, clip norm 1, early stopping on validation NLL",
              "results": results}
    if not args.no_compose:
        report["chorale"] = compose(best[1], out, args.length, seed=1)
        print(f"chorale: {report['chorale']}")
    plot_curves(results, out)
    (out / "jsb_results.json").write_text(json.dumps(report, indent=1))
    print("\n| model | units | parameters | test NLL per seed | mean ± sd | Chung et al. 2014 | best epoch | "
          "seconds per run |")
    print("|---|---|---|---|---|---|---|---|")
    for cell in args.cells:
        rs = [r for r in results if r["cell"] == cell]
        nll = np.array([r["test_nll"] for r in rs])
        sd = nll.std(ddof=1) if nll.size > 1 else 0.0
        per_seed = ", ".join(f"{v:.3f}" for v in nll)
        epochs = ", ".join(f"{r['best_epoch']:.0f}" for r in rs)
        seconds = ", ".join(f"{r['seconds']:.0f}" for r in rs)
        print(f"| {NAMES[cell]} | {SIZES[cell]} | {rs[0]['parameters']:,} | {per_seed} | "
              f"{nll.mean():.3f} ± {sd:.3f} | {PUBLISHED[cell]:.2f} | {epochs} | {seconds} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
