"""Interoperability with other frameworks.

:mod:`seqmodels.interop.torch` converts layers, states and gradients to and from PyTorch; PyTorch itself
is imported only when one of its functions runs, so this package imports without it
(``pip install seqmodels[torch]`` to use them).
"""

from .torch import from_torch, grads_to_torch_layout, state_from_torch, state_to_torch, to_torch

__all__ = ["from_torch", "to_torch", "state_from_torch", "state_to_torch", "grads_to_torch_layout"]
