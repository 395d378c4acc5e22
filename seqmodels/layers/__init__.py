"""Layers that follow the contract of design.md §2 (see :mod:`seqmodels.layers.base`)."""

from .base import Layer
from .bidirectional import Bidirectional, BiState
from .dense import Dense
from .embedding import Embedding
from .kinds import GRU, LSTM, RNN, make_recurrent
from .recurrent import LSTMState, Recurrent
from .stepper import Stepper
from .stack import Stack

__all__ = ["Layer", "Recurrent", "RNN", "GRU", "LSTM", "LSTMState", "Stepper", "Bidirectional", "BiState", "Stack",
           "Dense", "Embedding", "make_recurrent"]
