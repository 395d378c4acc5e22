"""seqmodels — recurrent sequence models (RNN, GRU, LSTM) with hand-written backpropagation through time.

>>> import numpy as np, seqmodels as sm
>>> lstm = sm.LSTM(input_size=8, hidden_size=16, seed=0)
>>> out, (a, c), cache = lstm.forward(np.zeros((4, 7, 8), np.float32))
>>> out.shape
(4, 7, 16)
"""

import os as _os
import sys as _sys

# OpenBLAS's idle worker threads spin for 2^28 cycles (~0.1 s) after every call by default, on the
# core a split time loop's second thread needs (seqmodels.cells.fast_gemm.parts_for); 2^24 cycles
# (~7 ms) still bridges the gaps between the calls of a training step. OpenBLAS reads this once, when
# NumPy loads it: set only if NumPy is not loaded yet and the user has not chosen a value.
if "numpy" not in _sys.modules:
    _os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "24")

from ._version import __version__  # noqa: E402
from .core.errors import (CheckpointError, ConfigError, DataError, DTypeError, NonFiniteError, SeqModelsError,
                          ShapeError)
from .core.accel import set_threads
from .core.params import ParamDict
from .layers import (GRU, LSTM, RNN, Bidirectional, BiState, Dense, Embedding, Layer, LSTMState, Recurrent,
                     Stack, make_recurrent)
from . import core, data, diagnostics, interop, io, text, training  # noqa: E402  (sub-packages as attributes)
from .models.base import Model, load_model
from .models.language_model import LanguageModel
from .models.ngram import NGramLM
from .models.seq2seq import Seq2Seq
from .models.generator import SequenceGenerator
from .models.tagger import Tagger
from .models.classifier import Classifier

__all__ = [
    "__version__", "RNN", "GRU", "LSTM", "LSTMState", "Recurrent", "Bidirectional", "BiState", "Stack",
    "Dense", "Embedding", "Layer", "ParamDict", "make_recurrent", "Model", "load_model", "LanguageModel",
    "NGramLM", "Seq2Seq", "SequenceGenerator", "Tagger", "Classifier", "core", "data", "diagnostics", "interop", "io", "text", "training",
    "SeqModelsError", "ConfigError", "ShapeError", "DTypeError", "DataError", "CheckpointError",
    "NonFiniteError", "set_threads",
]
