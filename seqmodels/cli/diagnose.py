"""``seqmodels diagnose``: gradients through time, gate activity, the agreement and exploding experiments.

    seqmodels diagnose gradients [DIR --text T]   ‖∂L/∂a<t>‖ per layer (a saved LM, or fresh cells)
    seqmodels diagnose gates DIR --text T         gate means / saturation per layer and token
    seqmodels diagnose agreement [--quick]        accuracy per cell and gap, gradient curves, gates
    seqmodels diagnose exploding [--quick]        no clipping vs ±5 element-wise vs global norm
    seqmodels diagnose all --out docs/figures     the agreement and exploding figures of the README
    seqmodels diagnose surprisal DIR "text"       per-token surprisal, surprising tokens highlighted

Tables go to stdout; PNG figures are written to ``--out`` when matplotlib is installed (a note on
stderr says so when it is not).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ..core.errors import ConfigError
from ..diagnostics import experiments as ex
from ..diagnostics import plots
from ..diagnostics.gates import format_surprisal, gate_activity, gate_table, lm_inputs
from ..diagnostics.gradients import format_rows, gradient_through_time
from .common import log, positive_float, positive_int

QUICK_AGREEMENT = dict(gaps=(3, 8), steps=40, target_params=600, curve_gap=8)
QUICK_EXPLODING = dict(steps=30, gap=8, hidden=16)


def register(subparsers) -> None:
    p = subparsers.add_parser("diagnose", help="see inside: gradients through time, gates, experiments",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", metavar="WHAT")
    sub.required = True

    def common(q, out_default="diagnostics"):
        q.add_argument("--out", default=out_default, help=f"folder for the PNG figures (default {out_default})")
        q.add_argument("--no-plot", action="store_true", help="print tables only, write no figure")
        q.add_argument("--seed", type=int, default=0, help="seed (default 0)")

    q = sub.add_parser("gradients", help="‖∂L/∂a<t>‖ per step and layer, and one-step Jacobian norms")
    q.add_argument("model", nargs="?", help="a saved language model; without it: fresh agreement cells")
    q.add_argument("--text", help="text for a saved model (the loss is at its last token)")
    q.add_argument("--loss", choices=("last", "all"), default="last", help="loss at the last token or all")
    q.add_argument("--cells", default=",".join(ex.ALL_CELLS), help="fresh cells to compare (comma-separated)")
    q.add_argument("--gap", type=positive_int, default=50, help="agreement gap for fresh cells (default 50)")
    q.add_argument("--norm", choices=("spectral", "frobenius"), default="spectral", help="Jacobian norm")
    common(q)
    q.set_defaults(func=cmd_gradients)

    q = sub.add_parser("gates", help="gate means, saturation and per-token values of a saved model")
    q.add_argument("model", help="a saved language model (GRU or LSTM)")
    q.add_argument("--text", required=True, help="the text to read")
    common(q)
    q.set_defaults(func=cmd_gates)

    for name, fn, helptext in (("agreement", cmd_agreement, "the long-range agreement experiment"),
                               ("exploding", cmd_exploding, "the exploding-gradients experiment"),
                               ("all", cmd_all, "both experiments (the README figures)")):
        q = sub.add_parser(name, help=helptext)
        if name in ("agreement", "all"):
            q.add_argument("--cells", default=",".join(ex.ALL_CELLS), help="cells (comma-separated)")
            q.add_argument("--gaps", default=",".join(map(str, ex.GAPS)), help="gaps (comma-separated)")
            q.add_argument("--params", type=positive_int, default=2400, help="target parameter count per cell")
            q.add_argument("--agreement-steps", type=positive_int, default=1500, help="max Adam steps per run")
        if name in ("exploding", "all"):
            q.add_argument("--scale", type=positive_float, default=2.5, help="recurrent init scale (× orthogonal)")
            q.add_argument("--lr", type=positive_float, default=0.3, help="SGD learning rate")
            q.add_argument("--exploding-steps", type=positive_int, default=300, help="SGD steps per setting")
            q.add_argument("--exploding-gap", type=positive_int, default=50, help="agreement gap of the task")
            q.add_argument("--seeds", default="0,1,2", help="seeds to repeat it with (the figure shows the first)")
        q.add_argument("--quick", action="store_true", help="a tiny run (seconds; for tests and smoke checks)")
        q.add_argument("--json", help="also write the numbers to this JSON file")
        common(q)
        q.set_defaults(func=fn)

    q = sub.add_parser("surprisal", help="per-token probability and surprisal of a text under a language model")
    q.add_argument("model", help="a saved language model")
    q.add_argument("text", help="the text to score")
    q.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="highlight surprising tokens with ANSI colours (auto: when stdout is a terminal)")
    q.set_defaults(func=cmd_surprisal)


# ------------------------------------------------------------------------------- helpers
def _load_lm(path):
    """A language model from a checkpoint directory, or from a run directory of ``seqmodels train``."""
    from ..models.base import load_model
    path = Path(path)
    if not (path / "checkpoint.json").exists() and (path / "model" / "checkpoint.json").exists():
        path = path / "model"
    model = load_model(path)
    if not hasattr(model, "log_prob") or not hasattr(model, "rnn"):
        raise ConfigError(f"{path}: expected a language model checkpoint, got a {model.kind}")
    return model


def _figure(args, fn, *a, name: str, **kw) -> None:
    if args.no_plot:
        return
    path = fn(*a, path=Path(args.out) / name, **kw)
    if path is None:
        if not plots.have_matplotlib():
            log(f"matplotlib is not installed (pip install 'seqmodels[plot]'): {name} not written, tables only")
        return
    log(f"wrote {path}")


def _csv(text: str, kind=str, name: str = "list") -> list:
    try:
        items = [kind(s.strip()) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--{name}: expected comma-separated values, got {text!r}") from None
    if not items:
        raise ConfigError(f"--{name}: expected at least one value, got {text!r}")
    return items


def _cells(text: str) -> list:
    cells = _csv(text, name="cells")
    for c in cells:
        if c not in ex.ALL_CELLS:
            raise ConfigError(f"--cells: unknown cell {c!r}; expected some of {', '.join(ex.ALL_CELLS)}")
    return cells


def _write_json(path, data) -> None:
    if path:
        Path(path).write_text(json.dumps(data, indent=1))
        log(f"wrote {path}")


# ------------------------------------------------------------------------------ commands
def cmd_gradients(args) -> int:
    if args.model:
        if not args.text:
            raise ConfigError("--text: a saved model needs a text to measure the gradients on")
        lm = _load_lm(args.model)
        x, tokens = lm_inputs(lm, args.text)
        y = lm.vocab.encode(lm.vocab.tokenize(args.text), add_eos=True)[None, :]
        result = gradient_through_time(lm, (x, y), loss=args.loss, norm=args.norm)
        print(f"loss {result.loss:.4f} ({args.loss}); {len(tokens)} tokens; ‖∂L/∂s<T-k>‖ per layer:")
        print(result.table())
        _figure(args, plots.plot_layer_gradients, result, name="gradients.png")
        return 0
    cells = _cells(args.cells)
    sizes = ex.matched_hidden_sizes(2400, cells)
    x, _ = ex.agreement_batch(np.random.default_rng(args.seed), 16, args.gap)
    rows, curves = [], []
    for cell in cells:
        model = ex.AgreementModel(cell, sizes[cell], seed=args.seed)
        g = gradient_through_time(model.layer, x, dout=model.readout_dout(x), norm=args.norm)["layer"]
        g.name = ex.CELL_LABELS[cell]
        curve = g.curve("state")
        curves.append(g)
        picks = [k for k in (0, 1, 5, 10, 20, 50, 100) if k < curve.size]
        rows.append([ex.CELL_LABELS[cell], str(sizes[cell])] + [f"{curve[k]:.3g}" for k in picks]
                    + [f"{np.nanmean(g.jacobian):.3f}"])
    print(f"fresh cells at initialisation, agreement gap {args.gap}: ‖∂L/∂s<T-k>‖ (mean of 16 sequences)")
    print(format_rows(["cell", "H"] + [f"k={k}" for k in picks] + [f"mean ‖J‖ ({args.norm})"], rows))
    from ..diagnostics.gradients import GradientThroughTime
    result = GradientThroughTime(float("nan"), {g.name: g for g in curves}, args.norm)
    _figure(args, plots.plot_layer_gradients, result, title=f"fresh cells at initialisation, G = {args.gap}",
            name="gradients.png")
    return 0


def _shown(token: str) -> str:
    return {" ": "␣", "\n": "⏎", "\t": "⇥"}.get(token, token)


def cmd_gates(args) -> int:
    lm = _load_lm(args.model)
    x, tokens = lm_inputs(lm, args.text)
    inputs = ["<EOS>"] + tokens[:-1]                      # the token read at each step
    act = gate_activity(lm, x)
    print(gate_table(act))
    for a in act.values():
        if a.gates:
            rows = [[_shown(tok)] + [f"{a.per_step(g)[0, t]:.2f}" for g in a.gates] for t, tok in enumerate(inputs)]
            print(f"\n{a.name} ({a.cell}): mean gate value over the units at each token read")
            print(format_rows(["token"] + list(a.gates), rows))
    _figure(args, plots.plot_lm_gates, act, [_shown(t) for t in inputs], name="gates.png")
    return 0


def _agreement(args):
    opts = dict(gaps=_csv(args.gaps, int, "gaps"), steps=args.agreement_steps, target_params=args.params,
                curve_gap=50)
    if args.quick:
        opts.update(QUICK_AGREEMENT)
    report = ex.run_agreement(_cells(args.cells), seed=args.seed, log=log, **opts)
    print(f"long-range agreement: test accuracy on 1000 fresh sequences (chance 0.5); settings {report.settings}")
    print(ex.agreement_table(report))
    print(f"\ngradient through time at G = {report.curve_gap}: ‖∂L/∂s<T-k>‖, init -> trained, and mean ‖J‖")
    rows = []
    for r in report.results:
        if r.curve_init is None:
            continue
        picks = [k for k in (0, 5, 10, 20, 50, 100) if k < len(r.curve_init)]
        rows.append([ex.CELL_LABELS[r.cell]] + [f"{r.curve_init[k]:.2g} -> {r.curve_trained[k]:.2g}" for k in picks]
                    + [f"{r.jacobian_init:.2f} -> {r.jacobian_trained:.2f}"])
    if rows:
        print(format_rows(["cell"] + [f"k={k}" for k in picks] + ["mean ‖J‖"], rows))
    _figure(args, plots.plot_agreement, report, name="agreement.png")
    _figure(args, plots.plot_gradient_curves, report, name="gradient_through_time.png")
    _figure(args, plots.plot_agreement_gates, report, name="agreement_gates.png")
    return report


def _exploding(args):
    opts = dict(steps=args.exploding_steps, init_scale=args.scale, lr=args.lr, gap=args.exploding_gap)
    seeds = _csv(args.seeds, int, "seeds")
    if args.quick:
        opts.update(QUICK_EXPLODING)
        seeds = seeds[:1]
    first, summaries = None, []
    for seed in seeds:
        log(f"exploding gradients, seed {seed}:")
        runs = ex.run_exploding(seed=seed, log=log, **opts)
        first = first or runs
        summaries += [dict(r.summary(), seed=seed) for r in runs]
    print(f"\nexploding gradients: tanh RNN H={opts.get('hidden', 32)}, recurrent init {opts['init_scale']:g} × "
          f"orthogonal, agreement gap {opts['gap']}, SGD lr {opts['lr']:g}, {opts['steps']} steps")
    keys = ["seed", "setting", "nonfinite", "max_norm", "median_norm", "clipped_steps", "final_loss", "accuracy"]
    print(format_rows(keys, [[f"{s[k]:.3g}" if isinstance(s[k], float) else str(s[k]) for k in keys]
                             for s in summaries]))
    _figure(args, plots.plot_exploding, first, name="exploding.png")
    return first, summaries


def cmd_agreement(args) -> int:
    report = _agreement(args)
    _write_json(args.json, {"settings": report.settings, "curve_gap": report.curve_gap,
                            "results": [r.to_dict() for r in report.results]})
    return 0


def cmd_exploding(args) -> int:
    _, summaries = _exploding(args)
    _write_json(args.json, {"runs": summaries})
    return 0


def cmd_all(args) -> int:
    report = _agreement(args)
    _, summaries = _exploding(args)
    _write_json(args.json, {"agreement": {"settings": report.settings, "curve_gap": report.curve_gap,
                                          "results": [r.to_dict() for r in report.results]},
                            "exploding": summaries})
    return 0


def cmd_surprisal(args) -> int:
    lm = _load_lm(args.model)
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    print(format_surprisal(lm, args.text, color=color))
    return 0
