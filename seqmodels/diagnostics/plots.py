"""Figures of the diagnostics (matplotlib is optional: every function returns None when it is absent).

Each ``plot_*`` writes one small PNG and returns its path; the numbers behind it are printed as tables
by the command line either way (``seqmodels diagnose ...``), so nothing is lost without matplotlib.

>>> from seqmodels.diagnostics.plots import have_matplotlib
>>> isinstance(have_matplotlib(), bool)
True
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .experiments import CELL_LABELS
from .gates import GATE_LABELS

__all__ = ["have_matplotlib", "plot_agreement", "plot_gradient_curves", "plot_agreement_gates", "plot_exploding",
           "plot_layer_gradients", "plot_lm_gates"]

DPI = 100
COLOURS = {"rnn": "C3", "irnn": "C1", "sgru": "C2", "gru": "C0", "lstm": "C4"}


def _style(cell: str) -> dict:
    """Colour of the base cell; variants (``rnn-uniform``, ``*-remember``) dashed in the same colour."""
    base = cell.split("-")[0]
    return {"color": COLOURS.get(base), "ls": "--" if "-" in cell else "-"}


def _pyplot():
    """matplotlib.pyplot with the Agg backend, or None when matplotlib is not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def have_matplotlib() -> bool:
    return _pyplot() is not None


def _save(fig, plt, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_agreement(report, path) -> Path | None:
    """Test accuracy per cell (rows) and gap G (columns) as an annotated heat map; chance = 0.5.

    Each square also shows the Adam steps used (runs stop at 99 % running training accuracy).
    """
    plt = _pyplot()
    if plt is None:
        return None
    gaps = sorted({r.gap for r in report.results})
    cells = list(dict.fromkeys(r.cell for r in report.results))
    acc = np.full((len(cells), len(gaps)), np.nan)
    steps = np.zeros((len(cells), len(gaps)), dtype=int)
    labels = []
    for i, cell in enumerate(cells):
        for r in report.results:
            if r.cell == cell:
                acc[i, gaps.index(r.gap)] = r.accuracy
                steps[i, gaps.index(r.gap)] = r.steps
                label = f"{CELL_LABELS[cell]}  (H={r.hidden}, {r.params} params)"
        labels.append(label)
    fig, ax = plt.subplots(figsize=(2.2 + 0.9 * len(gaps) + 2.6, 0.9 + 0.42 * len(cells)))
    im = ax.imshow(acc, vmin=0.5, vmax=1.0, cmap="RdYlGn", aspect="auto")
    for i in range(len(cells)):
        for j in range(len(gaps)):
            if np.isfinite(acc[i, j]):
                ax.text(j, i, f"{acc[i, j]:.2f}  ({steps[i, j]} steps)", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(gaps)))
    ax.set_xticklabels([f"G={g}" for g in gaps])
    ax.set_yticks(range(len(cells)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_title("Long-range agreement: test accuracy (chance 0.5) and training steps used", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.04)
    return _save(fig, plt, path)


def plot_gradient_curves(report, path) -> Path | None:
    """‖∂L/∂s<T-k>‖ against the distance k, at initialisation and after training (log scale)."""
    plt = _pyplot()
    if plt is None:
        return None
    runs = [r for r in report.results if r.curve_init is not None]
    if not runs:
        plt.close("all")
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, key, title in ((axes[0], "init", "at initialisation"), (axes[1], "trained", "after training")):
        for r in runs:
            curve = np.asarray(getattr(r, f"curve_{key}"), dtype=float)
            jac = getattr(r, f"jacobian_{key}")
            curve = np.where(curve > 0, curve, np.nan)
            ax.plot(np.arange(curve.size), curve, **_style(r.cell),
                    label=f"{CELL_LABELS[r.cell]} (mean ‖J‖ {jac:.2f})")
        ax.set_yscale("log")
        ax.set_xlabel("distance k from the verb slot (steps back)")
        ax.set_title(f"G = {report.curve_gap}, {title}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("‖∂L/∂s<T-k>‖ (mean over 16 sequences)")
    return _save(fig, plt, path)


def plot_agreement_gates(report, path) -> Path | None:
    """Gated cells after training on one probe sequence: mean gates per step, and the key gate per unit."""
    plt = _pyplot()
    if plt is None or not report.gates:
        return None
    cells = [c for c in ("lstm", "gru", "sgru") if c in report.gates]
    fig, axes = plt.subplots(len(cells), 2, figsize=(11, 2.8 * len(cells)), squeeze=False)
    for row, cell in zip(axes, cells):
        act, x = report.gates[cell]
        for g in act.gates:
            if g == "c":
                continue
            per = act.per_step(g)
            row[0].plot(per[0], color=f"C{'ufor'.index(g)}", label=GATE_LABELS[g] + " (cat)")
            row[0].plot(per[1], color=f"C{'ufor'.index(g)}", ls=":", label=GATE_LABELS[g] + " (cats)")
        row[0].set_ylim(0, 1)
        row[0].set_title(f"{CELL_LABELS[cell]}: mean gate per step")
        row[0].set_xlabel("step (subject at 0, verb slot last)")
        row[0].legend(fontsize=6, ncol=2)
        key = "f" if cell == "lstm" else "u"
        im = row[1].imshow(act.gates[key][0].T, aspect="auto", vmin=0, vmax=1, cmap="viridis",
                           interpolation="nearest")
        keeps = "bright" if key == "f" else "dark"
        row[1].set_title(f"{CELL_LABELS[cell]}: {GATE_LABELS[key]} per unit, 'cat ...' ({keeps} = keeps c<t-1>)",
                         fontsize=9)
        row[1].set_xlabel("step")
        row[1].set_ylabel("unit")
        fig.colorbar(im, ax=row[1])
    return _save(fig, plt, path)


def plot_exploding(runs, path, threshold: float = 5.0) -> Path | None:
    """Loss (left) and gradient norm before clipping (right) per step for each clipping setting.

    Non-finite steps (skipped by the training loop) are marked with an ``x`` at the top of both panels.
    """
    plt = _pyplot()
    if plt is None:
        return None
    fig, (ax_l, ax_g) = plt.subplots(1, 2, figsize=(11, 4))
    for i, run in enumerate(runs):
        colour = f"C{i}"
        steps = np.array([s for s, _ in run.history.loss])
        loss = np.array([v for _, v in run.history.loss], dtype=float)
        norms = np.array([b for _, b, _, _ in run.history.grad_norm], dtype=float)
        bad = [s for s, _, _ in run.history.nonfinite]
        ax_l.plot(steps, np.where(np.isfinite(loss), loss, np.nan), color=colour, lw=0.8,
                  label=f"{run.name} ({len(bad)} non-finite)")
        ax_g.plot(steps, np.where(np.isfinite(norms), norms, np.nan), color=colour, lw=0.8, label=run.name)
        for ax in (ax_l, ax_g):
            if bad:
                ax.plot(bad, np.full(len(bad), 0.97), "x", color=colour, ms=6, transform=ax.get_xaxis_transform())
    ax_g.axhline(threshold, color="0.4", ls="--", lw=1, label=f"norm threshold {threshold:g}")
    ax_l.set_yscale("log")
    ax_g.set_yscale("log")
    ax_l.set_title("training loss (x: non-finite step, skipped)")
    ax_g.set_title("global gradient norm before clipping")
    for ax in (ax_l, ax_g):
        ax.set_xlabel("step")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    ax_l.set_ylabel("cross-entropy (nats)")
    ax_g.set_ylabel("‖g‖")
    return _save(fig, plt, path)


def plot_layer_gradients(result, path, title: str = "") -> Path | None:
    """Per layer: ‖∂L/∂s<T-k>‖ against k (left, log) and the per-step Jacobian norm (right)."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, (ax_c, ax_j) = plt.subplots(1, 2, figsize=(11, 4))
    for i, sg in enumerate(result):
        curve = sg.curve("state")
        ax_c.plot(np.arange(curve.size), np.where(curve > 0, curve, np.nan), color=f"C{i}",
                  label=f"{sg.name} ({sg.cell})")
        if sg.jacobian is not None:
            ax_j.plot(np.nanmean(sg.jacobian, axis=0), color=f"C{i}", label=f"{sg.name} ({sg.cell})")
    ax_c.set_yscale("log")
    ax_c.set_xlabel("distance k from the last step")
    ax_c.set_ylabel("‖∂L/∂s<T-k>‖")
    ax_c.set_title(title or "gradient through time")
    ax_j.axhline(1.0, color="0.5", ls="--", lw=1)
    ax_j.set_xlabel("step t")
    ax_j.set_ylabel(f"‖∂s<t>/∂s<t-1>‖ ({result.norm})")
    ax_j.set_title("one-step Jacobian norm")
    for ax in (ax_c, ax_j):
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    return _save(fig, plt, path)


def plot_lm_gates(activity: dict, tokens: list, path) -> Path | None:
    """Heat map per layer: the mean of each gate over the units (rows) at each token (columns)."""
    plt = _pyplot()
    if plt is None:
        return None
    layers = [a for a in activity.values() if a.gates]
    if not layers:
        return None
    T = len(tokens)
    fig, axes = plt.subplots(len(layers), 1, figsize=(min(2 + 0.25 * T, 16), 1.2 + 1.0 * len(layers) * 1.6),
                             squeeze=False)
    for ax, act in zip(axes[:, 0], layers):
        names = list(act.gates)
        grid = np.stack([act.per_step(g)[0, :T] for g in names])
        grid = np.where(np.array([g == "c" for g in names])[:, None], (grid + 1) / 2, grid)
        im = ax.imshow(grid, aspect="auto", vmin=0, vmax=1, cmap="viridis", interpolation="nearest")
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels([GATE_LABELS[g] if g != "c" else "(c~+1)/2" for g in names], fontsize=7)
        ax.set_xticks(range(T))
        ax.set_xticklabels([t if t.strip() else "␣" for t in tokens], fontsize=7)
        ax.set_title(f"{act.name} ({act.cell}): mean gate value per token", fontsize=9)
        fig.colorbar(im, ax=ax)
    return _save(fig, plt, path)
