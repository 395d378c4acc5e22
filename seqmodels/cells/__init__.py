"""Recurrent cells: one step forward and backward, equation per line (see each module)."""

from .gru import GRUCell
from .lstm import LSTMCell
from .rnn import RNNCell

__all__ = ["RNNCell", "GRUCell", "LSTMCell"]
