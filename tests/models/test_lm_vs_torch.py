"""Twin training: ``LanguageModel.fit`` and the same network in PyTorch end with the same weights.

Both start from the same float64 weights (copied through ``seqmodels.interop.to_torch``), see the same
batches in the same order (stream windows with the state carried and reset at every epoch, or padded
lines with lengths), and take the same steps: mean cross-entropy, clipping (global norm or element-wise),
Adam. After N steps the per-step losses and every weight must agree to ~1e-8. A wrong gradient, a wrong
clip, a wrong optimiser update, a state not carried (or not reset), a window out of order or a padded
position leaking into the loss each make the two runs drift apart, so this proves training, not only
gradients.

The twin clips the global norm exactly as we do (``torch.nn.utils.clip_grad_norm_`` scales by
``c / (‖g‖ + 1e-6)``, which alone moves the runs apart by ~1e-8 within 30 Adam steps).
PyTorch keeps two biases per gate (``bias_ih``, ``bias_hh``); ours is their sum. The twin keeps the
summed bias in ``bias_ih`` and holds ``bias_hh`` at zero (frozen; for the GRU only its r and z rows,
its n rows being our ``b_ca``): a trainable ``bias_hh`` would make Adam move the effective bias twice.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from seqmodels.models.language_model import LanguageModel
from seqmodels.text import Vocabulary

torch = pytest.importorskip("torch")
from seqmodels.interop import to_torch  # noqa: E402

TEXT = ("the cat sat on the mat\nthe dog ate the log\na bird in the hand\nis worth two in the bush\n"
        "all that glitters is not gold\nto be or not to be\nsome are born great\n")


class Twin:
    """nn.Embedding / one-hot -> nn.LSTM|GRU|RNN -> nn.Linear, float64, with ``model``'s weights."""

    def __init__(self, model: LanguageModel, lr: float, clip: str, clip_value: float):
        self.V, H = len(model.vocab), model.hidden_size
        self.rnn = to_torch(model.rnn)
        for name, p in self.rnn.named_parameters():
            if name.startswith("bias_hh"):
                if model.cell == "gru":
                    p.register_hook(lambda g: torch.cat([torch.zeros_like(g[:2 * H]), g[2 * H:]]))
                else:
                    p.requires_grad_(False)
        self.emb = None
        if model.embedding is not None:
            self.emb = torch.nn.Embedding(self.V, model.embedding_dim).double()
            self.emb.weight.data.copy_(torch.from_numpy(np.array(model.params["embedding.W_e"])))
        self.head = torch.nn.Linear(H, self.V).double()
        self.head.weight.data.copy_(torch.from_numpy(np.array(model.params["head.W_y"])))
        self.head.bias.data.copy_(torch.from_numpy(np.array(model.params["head.b_y"])))
        self.params = [p for m in (self.emb, self.rnn, self.head) if m is not None
                       for p in m.parameters() if p.requires_grad]
        self.opt = torch.optim.Adam(self.params, lr=lr)
        self.clip, self.clip_value = clip, clip_value
        self.state = None

    def step(self, batch) -> float:
        x = torch.from_numpy(np.asarray(batch[0], np.int64))
        y = torch.from_numpy(np.asarray(batch[1], np.int64))
        inp = self.emb(x) if self.emb is not None else torch.nn.functional.one_hot(x, self.V).double()
        self.opt.zero_grad()
        if len(batch) == 2:                                     # stream window: carry the state
            h, state = self.rnn(inp, self.state)
            self.state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
            mask = torch.ones_like(y, dtype=torch.bool)
        else:                                                   # padded lines: mask t >= length
            h, _ = self.rnn(inp)
            lengths = torch.from_numpy(np.asarray(batch[2], np.int64))
            mask = torch.arange(y.shape[1])[None, :] < lengths[:, None]
        losses = torch.nn.functional.cross_entropy(self.head(h).reshape(-1, self.V), y.reshape(-1),
                                                   reduction="none")
        loss = losses[mask.reshape(-1)].mean()
        loss.backward()
        if self.clip == "norm":                                 # g ← g · c / ‖g‖ when ‖g‖ > c
            norm = torch.sqrt(sum((p.grad ** 2).sum() for p in self.params))
            if norm > self.clip_value:   # (clip_grad_norm_ divides by ‖g‖ + 1e-6: a 1e-6 relative change)
                for p in self.params:
                    p.grad.mul_(self.clip_value / norm)
        else:
            torch.nn.utils.clip_grad_value_(self.params, self.clip_value)
        self.opt.step()
        return loss.item()


CASES = {
    # id: (cell, cell options, embedding_dim, mode, clip, clip_value)
    "lstm-onehot-stream-norm": ("lstm", {}, None, "stream", "norm", 0.25),
    "lstm-embedding-stream-value": ("lstm", {}, 6, "stream", "value", 0.02),
    "lstm-embedding-lines-norm": ("lstm", {}, 6, "lines", "norm", 0.25),
    "gru-onehot-lines-value": ("gru", {"reset_after": True}, None, "lines", "value", 0.02),
    "rnn-embedding-stream-norm": ("rnn", {"activation": "tanh"}, 5, "stream", "norm", 0.5),
}


@pytest.mark.parametrize("case", list(CASES))
def test_fit_matches_pytorch_twin_step_for_step(case):
    cell, options, emb, mode, clip, clip_value = CASES[case]
    steps, lr = 30, 0.02
    vocab = Vocabulary.from_text(TEXT, level="char", lines_as_sequences=True, order="sorted")
    model = LanguageModel(vocab, cell, 12, 1, embedding_dim=emb, mode=mode, dtype=np.float64, seed=3, **options)
    data = model.batcher(TEXT, batch_size=3, seq_len=7, seed=5)          # shuffled / random offsets
    replay = copy.deepcopy(data)                                            # same batches, same order
    twin = Twin(model, lr, clip, clip_value)
    initial_hh = twin.rnn.weight_hh_l0.detach().numpy().copy()

    history = model.fit(data, steps=steps, optimizer="adam", lr=lr, clip=clip, clip_value=clip_value,
                        progress=False)

    torch_losses = []
    while len(torch_losses) < steps:                                        # passes over the data, as train()
        twin.state = None                                                   # reset the carried state
        for batch in replay:
            torch_losses.append(twin.step(batch))
            if len(torch_losses) == steps:
                break
    assert len(data) * 2 < steps, "the run must cross epoch boundaries"
    assert sum(n > 0 for *_, n in history.grad_norm) >= steps // 3, "clipping must be active"
    ours = np.array([v for _, v in history.loss])
    np.testing.assert_allclose(ours, torch_losses, rtol=1e-9, atol=1e-10)
    assert ours[-1] < ours[0] - 0.3                                         # it did learn something

    theirs = {k: v.detach().numpy() for k, v in twin.rnn.state_dict().items()}
    for k, v in to_torch(model.rnn).state_dict().items():
        np.testing.assert_allclose(v.numpy(), theirs[k], rtol=1e-8, atol=1e-10, err_msg=k)
    np.testing.assert_allclose(model.params["head.W_y"], twin.head.weight.detach().numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(model.params["head.b_y"], twin.head.bias.detach().numpy(), rtol=1e-8, atol=1e-10)
    if emb is not None:
        np.testing.assert_allclose(model.params["embedding.W_e"], twin.emb.weight.detach().numpy(),
                                   rtol=1e-8, atol=1e-10)
    moved = np.abs(to_torch(model.rnn).weight_hh_l0.detach().numpy() - initial_hh).max()
    assert moved > 1e-2                                                     # the weights really changed


def test_twin_detects_a_wrong_update():
    """The check has teeth: one extra Adam step on our side (a different lr) breaks the agreement."""
    vocab = Vocabulary.from_text(TEXT, level="char", lines_as_sequences=True, order="sorted")
    model = LanguageModel(vocab, "lstm", 12, 1, dtype=np.float64, seed=3)
    data = model.batcher(TEXT, batch_size=3, seq_len=7, seed=5)
    replay = copy.deepcopy(data)
    twin = Twin(model, 0.02, "norm", 0.5)
    model.fit(data, steps=5, optimizer="adam", lr=0.021, clip="norm", clip_value=0.5, progress=False)
    for _, batch in zip(range(5), replay):
        twin.step(batch)
    diff = np.abs(model.params["head.W_y"] - twin.head.weight.detach().numpy()).max()
    assert diff > 1e-5
