"""Exchange layers, states and gradients with PyTorch (``torch.nn.RNN``/``GRU``/``LSTM`` and their cells).

Weight mapping (design.md, "Names: notes ↔ code ↔ PyTorch"); every fused weight of ours is
``W = [W_h | W_x]`` acting on ``[a<t-1>; x<t>]``, PyTorch keeps ``weight_hh`` and ``weight_ih`` apart::

    RNN    W_a = [W_hh | W_ih]                       b_a = b_ih + b_hh
    LSTM   ours [u; f; o; c]  =  PyTorch [i; f; o; g]  (PyTorch's rows are i, f, g, o)
           b_g = b_ih,g + b_hh,g for every gate
    GRU    (reset_after=True only)  PyTorch rows r, z, n with  Γu = 1 - z = σ(-(z's pre-activation)):
           W_u = -[W_hz | W_iz]   b_u = -(b_iz + b_hz)
           W_r =  [W_hr | W_ir]   b_r =   b_ir + b_hr
           W_c =  [W_hn | W_in]   b_c =   b_in,        b_ca = b_hn

On export the summed biases go into ``bias_ih`` with zeros in ``bias_hh`` (for the GRU's n gate:
``b_in = b_c``, ``b_hn = b_ca``). PyTorch's state ``h`` (and ``c``) is ``(num_layers * num_directions,
B, H)`` with index ``layer * num_directions + direction``; ours is nested: a :class:`Stack` holds a tuple
with one entry per layer, a :class:`Bidirectional` a ``BiState(forward, backward)``, an LSTM an
``LSTMState(a, c)``.

PyTorch is imported lazily, inside the functions: importing :mod:`seqmodels.interop` never needs it.

>>> import torch, numpy as np                                     # doctest: +SKIP
>>> m = torch.nn.LSTM(5, 8, num_layers=2, bidirectional=True, batch_first=True).double()  # doctest: +SKIP
>>> layer = from_torch(m)             # Stack([Bidirectional(LSTM, LSTM), Bidirectional(LSTM, LSTM)])  # doctest: +SKIP
>>> m2 = to_torch(layer)              # batch_first=True, float64                               # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..core.errors import ConfigError, DTypeError, ShapeError
from ..layers.bidirectional import Bidirectional, BiState
from ..layers.kinds import GRU, LSTM, RNN
from ..layers.recurrent import LSTMState, Recurrent
from ..layers.stack import Stack

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["from_torch", "to_torch", "state_from_torch", "state_to_torch", "grads_to_torch_layout"]

#: our LSTM blocks [u, f, o, c] <-> PyTorch's chunks [i, f, g, o]: a self-inverse row permutation
_LSTM_PERM = (0, 1, 3, 2)


def _import_torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised with torch hidden
        raise ImportError(
            "seqmodels.interop.torch needs PyTorch, which is not installed; "
            "install it with `pip install seqmodels[torch]` (or `pip install torch`)"
        ) from exc
    return torch


def _to_numpy(t, dtype=None) -> np.ndarray:
    """A torch tensor (or array-like) as a NumPy array (a copy when ``dtype`` converts)."""
    if hasattr(t, "detach"):
        t = t.detach().cpu()
        if str(t.dtype) == "torch.bfloat16":                      # NumPy has no bfloat16
            t = t.float()
        t = t.numpy()
    arr = np.asarray(t)
    return arr.astype(dtype, copy=False) if dtype is not None else arr


def _torch_dtype(torch, dtype):
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise DTypeError(f"dtype: expected float32 or float64, got {dt}")
    return torch.float32 if dt == np.float32 else torch.float64


# --------------------------------------------------------------------------------------- import
def _kind_of(module, torch) -> tuple[str, str | None, bool]:
    """(kind, activation, is_cell) for a supported PyTorch module, else DTypeError."""
    nn = torch.nn
    for cls, kind, is_cell in ((nn.LSTM, "lstm", False), (nn.GRU, "gru", False), (nn.RNN, "rnn", False),
                               (nn.LSTMCell, "lstm", True), (nn.GRUCell, "gru", True), (nn.RNNCell, "rnn", True)):
        if isinstance(module, cls):
            return kind, getattr(module, "nonlinearity", None), is_cell
    raise DTypeError("module: expected torch.nn.RNN, GRU, LSTM, RNNCell, GRUCell or LSTMCell, "
                     f"got {type(module).__module__}.{type(module).__name__}")


def _load_direction(layer: Recurrent, kind: str, w_ih, w_hh, b_ih, b_hh) -> None:
    """Write one direction's PyTorch arrays (NumPy, already in ``layer.dtype``) into ``layer.params``."""
    H = layer.hidden_size
    p = layer.params
    if b_ih is None:
        b_ih = np.zeros(w_ih.shape[0], dtype=layer.dtype)
        b_hh = np.zeros(w_ih.shape[0], dtype=layer.dtype)
    W = np.concatenate([w_hh, w_ih], axis=1)                      # [W_h | W_x] on [a<t-1>; x<t>]

    def rows(i):
        return slice(i * H, (i + 1) * H)

    if kind == "rnn":
        p["W_a"] = W
        p["b_a"] = b_ih + b_hh
    elif kind == "lstm":
        for ours, theirs in zip(("u", "f", "o", "c"), _LSTM_PERM):
            p[f"W_{ours}"] = W[rows(theirs)]
            p[f"b_{ours}"] = b_ih[rows(theirs)] + b_hh[rows(theirs)]
    else:                                                          # PyTorch rows r, z, n
        r, z, n = rows(0), rows(1), rows(2)
        p["W_u"] = -W[z]                                           # Γu = 1 - z = σ(-z_pre)
        p["b_u"] = -(b_ih[z] + b_hh[z])
        p["W_r"] = W[r]
        p["b_r"] = b_ih[r] + b_hh[r]
        p["W_c"] = W[n]
        p["b_c"] = b_ih[n]
        p["b_ca"] = b_hh[n]


def _direction_from_torch(module, kind, activation, input_size, suffix, dtype, reverse) -> Recurrent:
    """One direction of one layer (parameter names ending in ``suffix``) as our layer."""
    H, kw = module.hidden_size, dict(dtype=dtype, seed=0, reverse=reverse)
    if kind == "rnn":
        layer = RNN(input_size, H, activation, **kw)
    elif kind == "gru":
        layer = GRU(input_size, H, "full", reset_after=True, **kw)
    else:
        layer = LSTM(input_size, H, **kw)

    def get(name):
        t = getattr(module, name + suffix, None)
        return None if t is None else _to_numpy(t, dtype).copy()

    _load_direction(layer, kind, get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh"))
    return layer


def from_torch(module, dtype=None):
    """Build the equivalent seqmodels layer from a PyTorch recurrent module, copying its weights.

    Args:
        module: ``torch.nn.RNN`` (tanh or relu), ``torch.nn.GRU`` (→ ``GRU(..., reset_after=True)``),
            ``torch.nn.LSTM`` (``proj_size`` must be 0), any ``num_layers``, ``bidirectional``,
            ``batch_first`` (ours is always batch-first) and ``bias=False`` (zero biases); or a cell
            ``torch.nn.RNNCell`` / ``GRUCell`` / ``LSTMCell``.
        dtype: float32 or float64; by default the dtype of the module's parameters.

    Returns:
        The plain layer (one layer, one direction, or a cell), ``Bidirectional(fwd, backward_layer=bwd)``
        with ``merge="concat"`` (PyTorch's output layout) for one bidirectional layer, or a
        :class:`Stack` of those with the module's ``dropout`` when ``num_layers > 1``. The layer's
        training mode follows the module's.
    """
    torch = _import_torch()
    kind, activation, is_cell = _kind_of(module, torch)
    if dtype is None:
        tdt = next(iter(module.parameters())).dtype
        dtype = {torch.float32: np.float32, torch.float64: np.float64}.get(tdt)
        if dtype is None:
            raise DTypeError(f"module: expected float32 or float64 parameters, got {tdt}; "
                             "pass dtype=np.float32 (or np.float64) to convert")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise DTypeError(f"dtype: expected float32 or float64, got {dtype}")
    if is_cell:
        layer = _direction_from_torch(module, kind, activation, module.input_size, "", dtype, False)
        return layer.train(module.training)
    if getattr(module, "proj_size", 0):
        raise ConfigError(f"module.proj_size: expected 0, got {module.proj_size}; seqmodels' LSTM has no "
                          "output projection (LSTMP) — use proj_size=0 or add a Dense layer after it")
    dirs = 2 if module.bidirectional else 1
    H = module.hidden_size
    layers = []
    for k in range(module.num_layers):
        d_in = module.input_size if k == 0 else dirs * H
        fwd = _direction_from_torch(module, kind, activation, d_in, f"_l{k}", dtype, False)
        if dirs == 2:
            bwd = _direction_from_torch(module, kind, activation, d_in, f"_l{k}_reverse", dtype, True)
            layers.append(Bidirectional(fwd, "concat", backward_layer=bwd))
        else:
            layers.append(fwd)
    layer = layers[0] if len(layers) == 1 else Stack(layers, dropout=float(module.dropout))
    return layer.train(module.training)


# --------------------------------------------------------------------------------------- export
def _direction_to_torch(layer: Recurrent, *, grads: bool = False) -> dict[str, np.ndarray]:
    """One direction as PyTorch arrays ``weight_ih, weight_hh, bias_ih, bias_hh``.

    With ``grads=False`` the parameters (summed biases in ``bias_ih``, zeros in ``bias_hh`` — except the
    GRU's n gate, whose ``bias_hh`` is ``b_ca``). With ``grads=True`` the same linear map applied to the
    gradients, where each summed bias's gradient is PyTorch's gradient of ``bias_ih`` *and* of ``bias_hh``.
    """
    _check_exportable(layer)
    src = layer.grads if grads else layer.params
    H = layer.hidden_size
    if isinstance(layer, RNN):
        W, b_ih = src["W_a"], src["b_a"]
        b_hh = b_ih if grads else np.zeros_like(b_ih)
    elif isinstance(layer, LSTM):
        order = ("u", "f", "c", "o")                               # PyTorch's i, f, g, o
        W = np.concatenate([src[f"W_{g}"] for g in order])
        b_ih = np.concatenate([src[f"b_{g}"] for g in order])
        b_hh = b_ih if grads else np.zeros_like(b_ih)
    else:                                                          # GRU reset_after: rows r, z, n
        W = np.concatenate([src["W_r"], -src["W_u"], src["W_c"]])
        b_ih = np.concatenate([src["b_r"], -src["b_u"], src["b_c"]])
        if grads:
            b_hh = np.concatenate([src["b_r"], -src["b_u"], src["b_ca"]])
        else:
            b_hh = np.concatenate([np.zeros(2 * H, dtype=layer.dtype), src["b_ca"]])
    return {"weight_ih": np.ascontiguousarray(W[:, H:]), "weight_hh": np.ascontiguousarray(W[:, :H]),
            "bias_ih": np.array(b_ih), "bias_hh": np.array(b_hh)}


def _signature(layer: Recurrent) -> tuple:
    """What must agree between directions / stacked layers for one PyTorch module."""
    if isinstance(layer, RNN):
        return ("rnn", layer.activation, layer.hidden_size)
    return (type(layer).__name__.lower(), layer.hidden_size)


def _check_recurrent(layer, name: str = "layer") -> None:
    if not isinstance(layer, (RNN, GRU, LSTM)):
        raise ConfigError(f"{name}: expected an RNN, GRU or LSTM (or Bidirectional of one), got "
                          f"{type(layer).__name__}; PyTorch's recurrent modules hold only recurrent layers")


def _check_exportable(layer, name: str = "layer") -> None:
    _check_recurrent(layer, name)
    if isinstance(layer, GRU) and not (layer.variant == "full" and layer.reset_after):
        form = ("the simplified GRU (no relevance gate Γr)" if layer.variant == "simplified"
                else "the notes' GRU (reset_after=False: Γr multiplies c<t-1> before the matmul)")
        raise ConfigError(
            f"{name}: {form} has no PyTorch equivalent — torch.nn.GRU computes "
            "c~ = tanh(W_cx x + b_c + Γr * (W_ca a + b_ca)) (reset after the matmul), a different function; "
            "only GRU(..., variant='full', reset_after=True) can be exported")
    if isinstance(layer, LSTM) and layer.peephole:
        raise ConfigError(f"{name}: LSTM(peephole=True) has no PyTorch equivalent — torch.nn.LSTM has no "
                          "peephole connections; only peephole=False can be exported")


def _plan(layer, export: bool = True) -> tuple[list[tuple[Recurrent, ...]], float]:
    """The layer as PyTorch sees it: per stacked layer a tuple of directions, and the dropout.

    ``export=False`` checks only the structure (for state mapping: any recurrent layer has a state).
    """
    if isinstance(layer, Stack):
        groups = [_directions(l, f"layers[{i}]", export) for i, l in enumerate(layer.layers)]
        dropout = layer.dropout
    else:
        groups, dropout = [_directions(layer, "layer", export)], 0.0
    if not export:
        return groups, dropout
    first, dirs = groups[0][0], len(groups[0])
    for i, g in enumerate(groups):
        if len(g) != dirs:
            raise ConfigError(f"layers[{i}]: expected every stacked layer to be "
                              f"{'bidirectional' if dirs == 2 else 'unidirectional'} like layers[0]; "
                              "PyTorch's num_layers stacks identical layers")
        for d in g:
            if _signature(d) != _signature(first):
                raise ConfigError(f"layers[{i}]: expected the same kind and hidden size as layers[0] "
                                  f"({_signature(first)}), got {_signature(d)}; PyTorch's num_layers stacks "
                                  "identical layers")
            want = first.input_size if i == 0 else dirs * first.hidden_size
            if d.input_size != want:
                raise ConfigError(f"layers[{i}]: expected input_size {want}, got {d.input_size}")
            if d.dtype != first.dtype:
                raise ConfigError(f"layers[{i}]: expected dtype {first.dtype}, got {d.dtype}")
    return groups, dropout


def _directions(layer, name: str, export: bool) -> tuple[Recurrent, ...]:
    check = _check_exportable if export else _check_recurrent
    if isinstance(layer, Bidirectional):
        if export and layer.merge != "concat":
            raise ConfigError(f"{name}: expected merge='concat' (PyTorch concatenates the two directions), "
                              f"got merge={layer.merge!r}")
        check(layer.fwd, name)
        check(layer.bwd, name)
        return (layer.fwd, layer.bwd)
    if isinstance(layer, Stack):
        raise ConfigError(f"{name}: a Stack inside a Stack cannot be mapped to PyTorch; flatten it first")
    check(layer, name)
    if export and layer.reverse:
        raise ConfigError(f"{name}: a lone reverse=True layer has no PyTorch equivalent; wrap it in "
                          "Bidirectional or flip the input")
    return (layer,)


def to_torch(layer, *, cell: bool = False):
    """Build the PyTorch module computing the same function as ``layer``, copying its weights.

    Args:
        layer: an RNN, ``GRU(reset_after=True)`` or LSTM (``peephole=False``); a ``Bidirectional`` of
            those with ``merge="concat"``; or a ``Stack`` of identical such layers (same kind, hidden
            size and direction count; layer ``l > 0`` reading ``num_directions * H`` features).
        cell: return a ``torch.nn.RNNCell`` / ``GRUCell`` / ``LSTMCell`` instead (plain layers only).

    Returns:
        ``torch.nn.RNN`` / ``GRU`` / ``LSTM`` with ``batch_first=True``, in the layer's dtype, with the
        summed biases in ``bias_ih`` and zeros in ``bias_hh`` (the GRU's ``b_hn = b_ca``); its training
        mode follows the layer's.

    Raises:
        ConfigError: for a layer PyTorch cannot express (peepholes, the notes' or the simplified GRU,
            merge other than concat, mixed stacks, dense layers in a stack).
    """
    torch = _import_torch()
    groups, dropout = _plan(layer)
    first = groups[0][0]
    dirs, L = len(groups[0]), len(groups)
    tdtype = _torch_dtype(torch, first.dtype)
    nn = torch.nn
    if cell:
        if L != 1 or dirs != 1:
            raise ConfigError("cell=True: expected one unidirectional RNN, GRU or LSTM, "
                              f"got {L} layer(s) × {dirs} direction(s)")
        if isinstance(first, RNN):
            module = nn.RNNCell(first.input_size, first.hidden_size, nonlinearity=first.activation)
        elif isinstance(first, LSTM):
            module = nn.LSTMCell(first.input_size, first.hidden_size)
        else:
            module = nn.GRUCell(first.input_size, first.hidden_size)
    else:
        kw = dict(num_layers=L, bias=True, batch_first=True, dropout=float(dropout) if L > 1 else 0.0,
                  bidirectional=dirs == 2)
        if isinstance(first, RNN):
            module = nn.RNN(first.input_size, first.hidden_size, nonlinearity=first.activation, **kw)
        elif isinstance(first, LSTM):
            module = nn.LSTM(first.input_size, first.hidden_size, **kw)
        else:
            module = nn.GRU(first.input_size, first.hidden_size, **kw)
    module = module.to(tdtype)
    with torch.no_grad():
        for k, group in enumerate(groups):
            for d, direction in enumerate(group):
                suffix = "" if cell else f"_l{k}" + ("_reverse" if d else "")
                for name, arr in _direction_to_torch(direction).items():
                    getattr(module, name + suffix).copy_(torch.from_numpy(arr))
    return module.train(bool(getattr(layer, "training", True)))


def grads_to_torch_layout(layer, *, cell: bool = False) -> dict[str, np.ndarray]:
    """``layer.grads`` mapped to PyTorch's parameter names and layout (what ``p.grad`` would hold).

    Keys are ``weight_ih_l{k}[_reverse]`` etc. (``weight_ih`` etc. with ``cell=True``). For a summed bias
    our ``db`` is the gradient of both ``bias_ih`` and ``bias_hh``; the GRU's ``bias_hh`` of the n gate
    gets ``db_ca``; the GRU's z rows are negated. For a module built with ``bias=False``, ignore the bias
    entries.
    """
    groups, _ = _plan(layer)
    out = {}
    for k, group in enumerate(groups):
        for d, direction in enumerate(group):
            suffix = "" if cell else f"_l{k}" + ("_reverse" if d else "")
            for name, arr in _direction_to_torch(direction, grads=True).items():
                out[name + suffix] = arr
    return out


# ---------------------------------------------------------------------------------------- states
def state_from_torch(h, c=None, *, layer=None, num_layers: int | None = None, bidirectional: bool | None = None,
                     dtype=None):
    """PyTorch's ``h_n`` (and ``c_n``) — ``(num_layers * num_directions, B, H)`` — as our nested state.

    Give ``layer`` (the seqmodels layer the state is for: structure and dtype follow it), or describe
    the module with ``num_layers`` (default 1) and ``bidirectional`` (default False). A cell's ``(B, H)``
    state is accepted as one layer. ``c`` is required exactly for LSTMs. Works for gradients too
    (``h0.grad``, ``c0.grad``).

    Returns:
        ``a`` (B, H) or ``LSTMState(a, c)`` per direction; ``BiState(forward, backward)`` for a
        bidirectional layer; a tuple with one entry per layer for a Stack (or ``num_layers > 1``).
    """
    h = _to_numpy(h)
    cc = None if c is None else _to_numpy(c)
    if layer is not None:
        groups, _ = _plan(layer, export=False)
        stacked = isinstance(layer, Stack)
        if len({(type(d), d.hidden_size) for g in groups for d in g}) > 1:
            raise ConfigError("layer: PyTorch's state layout needs every layer of one kind and hidden size")
        L, dirs = len(groups), len(groups[0])
        lstm = isinstance(groups[0][0], LSTM)
        if dtype is None:
            dtype = groups[0][0].dtype
        if lstm and c is None:
            raise ConfigError("c: an LSTM's state needs both h and c, got c=None")
        if not lstm and c is not None:
            raise ConfigError(f"c: a {type(groups[0][0]).__name__} has no cell state, got c")
    else:
        L = 1 if num_layers is None else int(num_layers)
        dirs = 2 if bidirectional else 1
        stacked = L > 1
        lstm = c is not None
    if dtype is not None:
        h = h.astype(dtype, copy=False)
        cc = None if cc is None else cc.astype(dtype, copy=False)
    if h.ndim == 2:
        h = h[None]
        cc = None if cc is None else cc[None]
    if h.ndim != 3 or h.shape[0] != L * dirs:
        raise ShapeError(f"h: expected shape ({L * dirs}, B, H) (num_layers * num_directions first), "
                         f"got {h.shape}")
    if cc is not None and cc.shape != h.shape:
        raise ShapeError(f"c: expected the shape of h {h.shape}, got {cc.shape}")

    def one(i):
        return LSTMState(h[i].copy(), cc[i].copy()) if lstm else h[i].copy()

    per_layer = []
    for k in range(L):
        if dirs == 2:
            per_layer.append(BiState(one(2 * k), one(2 * k + 1)))
        else:
            per_layer.append(one(k))
    return tuple(per_layer) if stacked else per_layer[0]


def _flatten_state(state) -> list:
    """Nested state -> list of per-direction states (arrays or LSTMState) in PyTorch's order."""
    if isinstance(state, (LSTMState, np.ndarray)):
        return [state]
    if isinstance(state, BiState):
        return _flatten_state(state.forward) + _flatten_state(state.backward)
    if isinstance(state, tuple):
        out = []
        for i, s in enumerate(state):
            if s is None:
                raise ConfigError(f"state[{i}]: None (a layer without state) cannot be mapped to PyTorch")
            out += _flatten_state(s)
        return out
    raise DTypeError(f"state: expected an array, LSTMState, BiState or tuple, got {type(state).__name__}")


def state_to_torch(state, *, cell: bool = False):
    """Our nested state as PyTorch's ``h`` — or ``(h, c)`` for LSTMs — of shape ``(L * dirs, B, H)``.

    Accepts what ``forward`` returns (or ``backward``'s initial-state gradient). With ``cell=True`` a
    single direction's state is returned as ``(B, H)`` tensors, as the cells take it. Tensors keep the
    state's dtype.
    """
    torch = _import_torch()
    parts = _flatten_state(state)
    lstm = isinstance(parts[0], LSTMState)
    if any(isinstance(p, LSTMState) != lstm for p in parts):
        raise ConfigError("state: mixes LSTM (a, c) states with single-array states")
    if cell and len(parts) != 1:
        raise ConfigError(f"cell=True: expected the state of one direction, got {len(parts)}")

    def stack(arrs):
        arr = np.stack([np.asarray(a) for a in arrs])
        return torch.from_numpy(arr[0] if cell else arr)

    if lstm:
        return stack([p.a for p in parts]), stack([p.c for p in parts])
    return stack(parts)
