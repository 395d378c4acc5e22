"""Learning tests: the engine trains, not only differentiates.

1. A tagger-shaped model (Embedding -> Bidirectional LSTM -> Dense -> softmax CE) overfits a small batch.
2. RNN, GRU and LSTM each learn a task whose answer is the token seen many steps back.
"""

import numpy as np
import pytest

import seqmodels as sm
from seqmodels.core.functional import softmax_cross_entropy
from seqmodels.training.clip import clip_by_global_norm
from seqmodels.training.optim import Adam


def test_tagger_shaped_model_overfits_a_small_batch():
    rng = np.random.default_rng(0)
    V, K, B, T = 20, 5, 8, 7
    ids = rng.integers(1, V, size=(B, T))
    tags = rng.integers(0, K, size=(B, T))
    lengths = np.array([7, 3, 5, 7, 1, 6, 4, 2])
    emb = sm.Embedding(V, 12, seed=1)
    net = sm.Stack([sm.Bidirectional(sm.LSTM(12, 16, seed=2), seed=3), sm.Dense(32, K, seed=4)])
    params = sm.ParamDict({**{f"emb.{k}": v for k, v in emb.params.items()}, **dict(net.params)})
    grads = sm.ParamDict({**{f"emb.{k}": v for k, v in emb.grads.items()}, **dict(net.grads)})
    opt = Adam(params, grads, lr=0.02)
    for step in range(150):
        emb.zero_grad()
        net.zero_grad()
        x, _, c_emb = emb.forward(ids, lengths)
        logits, _, c_net = net.forward(x, lengths)
        loss, dlogits = softmax_cross_entropy(logits, tags, lengths=lengths, reduction="mean")
        dx, _ = net.backward(dlogits, c_net)
        emb.backward(dx, c_emb)
        opt.step()
    assert loss < 0.02
    pred = logits.argmax(-1)
    mask = np.arange(T)[None, :] < lengths[:, None]
    assert (pred[mask] == tags[mask]).all()


def copy_first_token_task(rng, batch, steps, vocab=4):
    """Many-to-one: the label is the first token; the other tokens are noise."""
    ids = rng.integers(0, vocab, size=(batch, steps))
    return ids, ids[:, 0].copy()


@pytest.mark.parametrize("make, gap, target", [
    (lambda: sm.RNN(4, 24, seed=0), 10, 0.95),
    (lambda: sm.GRU(4, 16, seed=0), 20, 0.95),
    (lambda: sm.LSTM(4, 16, seed=0), 20, 0.95),
])
def test_cells_remember_a_token_many_steps_back(make, gap, target):
    rng = np.random.default_rng(0)
    layer = make()
    head = sm.Dense(layer.hidden_size, 4, seed=1)
    params = sm.ParamDict.merged({"rnn": layer.params, "head": head.params})
    grads = sm.ParamDict.merged({"rnn": layer.grads, "head": head.grads})
    opt = Adam(params, grads, lr=0.01)
    for step in range(400):
        ids, labels = copy_first_token_task(rng, 32, gap)
        layer.zero_grad()
        head.zero_grad()
        _, a_T, cache = layer.forward(ids)                        # ids: one-hot input
        a = a_T.a if isinstance(a_T, tuple) else a_T
        logits, _, c_head = head.forward(a)
        loss, dlogits = softmax_cross_entropy(logits, labels, reduction="mean")
        da, _ = head.backward(dlogits, c_head)
        layer.backward(None, cache, dstate=type(a_T)(da, np.zeros_like(da)) if isinstance(a_T, tuple) else da)
        clip_by_global_norm(grads, 5.0)
        opt.step()
    ids, labels = copy_first_token_task(np.random.default_rng(99), 500, gap)
    a_T = layer.forward(ids)[1]
    a = a_T.a if isinstance(a_T, tuple) else a_T
    accuracy = (head.forward(a)[0].argmax(-1) == labels).mean()
    assert accuracy >= target, f"accuracy {accuracy:.3f} after training (chance is 0.25)"
