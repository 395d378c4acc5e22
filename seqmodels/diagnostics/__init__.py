"""Seeing inside recurrent models: gradients through time, gate activity, surprisal, experiments.

- :func:`gradient_through_time` — ‖∂L/∂a<t>‖ per step and layer for a loss at the end, and the one-step
  Jacobian norms ‖∂s<t>/∂s<t-1>‖ (:func:`jacobian_norms`).
- :func:`gate_activity` — Γu, Γf, Γo, Γr, c~ and the states of every layer at every step, with means and
  saturation fractions; :func:`surprisal` / :func:`format_surprisal` — what a language model found surprising.
- :mod:`~seqmodels.diagnostics.experiments` — the long-range agreement and exploding-gradient experiments;
  :mod:`~seqmodels.diagnostics.plots` — their figures (matplotlib optional, tables otherwise).
"""

from .gates import (GATE_LABELS, GateSummary, LayerActivity, TokenSurprisal, format_surprisal, gate_activity,
                    gate_table, surprisal)
from .gradients import GradientThroughTime, StateGradients, gradient_through_time, jacobian_norms

__all__ = [
    "gradient_through_time", "jacobian_norms", "GradientThroughTime", "StateGradients",
    "gate_activity", "gate_table", "LayerActivity", "GateSummary", "GATE_LABELS",
    "surprisal", "format_surprisal", "TokenSurprisal",
]
