"""Saving and loading: safetensors files, checkpoint directories and single-file ``.npz`` checkpoints.

No pickle anywhere. See :mod:`seqmodels.io.safetensors` and :mod:`seqmodels.io.checkpoint` for the
file layouts.
"""

from seqmodels.io.checkpoint import (
    FORMAT_VERSION,
    Checkpoint,
    check_arrays,
    load_checkpoint,
    load_npz,
    save_checkpoint,
    save_npz,
)
from seqmodels.io.safetensors import load_safetensors, save_safetensors

__all__ = [
    "FORMAT_VERSION",
    "Checkpoint",
    "check_arrays",
    "load_checkpoint",
    "load_npz",
    "load_safetensors",
    "save_checkpoint",
    "save_npz",
    "save_safetensors",
]
