"""SequenceGenerator: gradients, the NLL per time step against a direct computation, generation, checkpoints."""

import numpy as np
import pytest

from seqmodels.core.errors import ConfigError, DataError, ShapeError
from seqmodels.core.functional import sigmoid_cross_entropy
from seqmodels.core.gradcheck import numerical_gradient, relative_error
from seqmodels.models.base import Model
from seqmodels.models.generator import RollBatcher, SequenceGenerator


def random_rolls(rng, lengths, K, p=0.3):
    return [(rng.random((T, K)) < p).astype(np.uint8) for T in lengths]


@pytest.mark.parametrize("cell, layers, options", [("rnn", 1, {}), ("gru", 2, {}), ("lstm", 1, {"peephole": True})])
def test_gradients_of_all_parameters_float64(cell, layers, options):
    rng = np.random.default_rng(0)
    model = SequenceGenerator(5, cell, 4, layers, note_offset=60, dtype=np.float64, seed=1, **options)
    for v in model.params.values():                       # move off the initial values (zero biases etc.)
        v += 0.3 * rng.standard_normal(v.shape)
    batch = RollBatcher(random_rolls(rng, [4, 2, 3], 5), batch_size=3, shuffle=False, dtype=np.float64)
    x, y, lengths = next(iter(batch))

    def loss():
        logits, _, _ = model.forward(x, lengths)
        return sigmoid_cross_entropy(logits, y, lengths=lengths, reduction="mean")[0]

    model.zero_grad()
    value, steps = model.train_batch((x, y, lengths))
    assert steps == 9 and value == pytest.approx(loss(), rel=1e-12)
    for name, param in model.params.items():
        num = numerical_gradient(loss, param, eps=1e-5)
        assert relative_error(model.grads[name], num) < 1e-6, name


def test_nll_per_time_step_equals_a_direct_computation():
    """Tanh RNN by hand: a<t> = tanh(W_a [a<t-1>; x<t>] + b_a), x<1> = 0, x<t> = y<t-1>, p = σ(W_y a + b_y)."""
    rng = np.random.default_rng(3)
    model = SequenceGenerator(3, "rnn", 2, note_offset=40, dtype=np.float64, seed=0)
    for v in model.params.values():
        v[...] = rng.standard_normal(v.shape)
    seqs = [[[40, 42], [], [41], [40, 41, 42]], [[42]], [[41], [40]]]
    W_a, b_a = model.params["rnn.layers.0.W_a"], model.params["rnn.layers.0.b_a"]
    W_y, b_y = model.params["head.W_y"], model.params["head.b_y"]
    total, steps = 0.0, 0
    for seq in seqs:
        a, x = np.zeros(2), np.zeros(3)
        for notes in seq:
            y = np.zeros(3)
            y[[n - 40 for n in notes]] = 1
            a = np.tanh(W_a @ np.concatenate([a, x]) + b_a)
            p = 1 / (1 + np.exp(-(W_y @ a + b_y)))
            total -= np.sum(y * np.log(p) + (1 - y) * np.log(1 - p))
            steps += 1
            x = y
    expected = total / steps                              # averaged over all 7 time steps, not per sequence
    assert model.evaluate(seqs) == pytest.approx(expected, rel=1e-12)
    assert model.evaluate(seqs, batch_size=1) == pytest.approx(expected, rel=1e-12)


def test_batcher_shifts_frames_and_pads_with_zeros():
    rolls = [np.eye(3, dtype=np.uint8), np.ones((1, 3), np.uint8)]
    x, y, lengths = next(iter(RollBatcher(rolls, 2, shuffle=False, bucket=False)))
    assert lengths.tolist() == [3, 1]
    assert x[0].tolist() == [[0, 0, 0], [1, 0, 0], [0, 1, 0]]
    assert y[0].tolist() == np.eye(3).tolist()
    assert x[1].tolist() == [[0, 0, 0]] * 3 and y[1].tolist() == [[1, 1, 1], [0, 0, 0], [0, 0, 0]]


def _sharp_model(seed=0):
    model = SequenceGenerator(6, "gru", 8, note_offset=50, dtype=np.float64, seed=seed)
    rng = np.random.default_rng(seed)
    for v in model.params.values():
        v[...] = 1.5 * rng.standard_normal(v.shape)
    return model


def test_generation_is_reproducible_and_respects_length():
    model = _sharp_model()
    a = model.generate(3, length=17, seed=7)
    b = model.generate(3, length=17, seed=7)
    c = model.generate(3, length=17, seed=8)
    assert a.shape == (3, 17, 6) and a.dtype == np.uint8 and set(np.unique(a)) <= {0, 1}
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert model.generate(1, length=1, seed=0).shape == (1, 1, 6)


@pytest.mark.parametrize("primer", [None, [[50, 53], [], [55]]])
def test_each_sampled_frame_is_fed_back(primer):
    """At a tiny temperature a note sounds iff its logit is > 0; the logits must be those of the model
    run (teacher-forced) on zeros, the primer and the generated frames themselves."""
    model = _sharp_model(2)
    gen = model.generate(2, length=12, primer=primer, seed=0, temperature=1e-6)
    head = np.zeros((1, 6)) if primer is None else np.concatenate([np.zeros((1, 6)), model.encode(primer)])
    for row in gen:
        x = np.concatenate([head, row[:-1]])[None]
        logits, _, _ = model.forward(x)
        z = logits[0, head.shape[0] - 1:]
        assert np.abs(z).min() > 1e-4                     # no coin flips at this temperature
        assert np.array_equal(row, (z > 0).astype(np.uint8))


def test_notes_are_drawn_as_independent_bernoullis_with_temperature():
    model = SequenceGenerator(4, "rnn", 3, note_offset=60, dtype=np.float64, seed=0)
    model.params["head.W_y"][...] = 0                     # p<t>_k = σ(b_k / temperature), whatever the past
    b = np.array([-2.0, -0.5, 0.5, 1.5])
    model.params["head.b_y"][...] = b
    for temperature in (1.0, 2.0):
        frames = model.generate(200, length=20, seed=1, temperature=temperature).reshape(-1, 4)
        p = 1 / (1 + np.exp(-b / temperature))
        assert np.allclose(frames.mean(axis=0), p, atol=0.025)


def test_save_and_load_round_trip(tmp_path):
    model = SequenceGenerator(10, "lstm", 6, 2, note_offset=30, dropout=0.2, seed=4, peephole=True)
    seqs = [[[30, 35], [31], [], [39]], [[32, 33]]]
    model.save(tmp_path / "ck")
    loaded = Model.load(tmp_path / "ck")
    assert isinstance(loaded, SequenceGenerator)
    assert loaded.config() == model.config() and loaded.note_range == (30, 39)
    for k in model.params:
        assert np.array_equal(loaded.params[k], model.params[k])
    assert loaded.evaluate(seqs) == model.evaluate(seqs)
    assert np.array_equal(loaded.generate(2, 9, seed=3), model.generate(2, 9, seed=3))


def test_fit_learns_a_repeating_progression():
    """I-IV-V repeated: each chord determines the next, so the NLL falls to near 0."""
    chords = [[60, 64, 67], [60, 65, 69], [62, 67, 71]]
    seqs = [chords[i % 3:] + chords * 4 for i in range(6)]
    model = SequenceGenerator(12, "gru", 16, note_offset=60, seed=0)
    before = model.evaluate(seqs)
    history = model.fit(seqs, seqs, batch_size=6, optimizer="adam", lr=0.03, steps=150, eval_every=150,
                        progress=False)
    after = model.evaluate(seqs)
    assert before > 5 and after < 1.0 and history.best_val == pytest.approx(after, rel=1e-6)
    gen = model.generate(1, 8, primer=chords, seed=0, temperature=0.5)[0]
    assert [model.decode(gen[i:i + 1])[0] for i in range(3)] == chords


def test_resume_continues_exactly(tmp_path):
    rng = np.random.default_rng(5)
    seqs = random_rolls(rng, [6, 4, 5, 7, 3], 4)
    full = SequenceGenerator(4, "gru", 5, note_offset=60, seed=0)
    full.fit(seqs, batch_size=2, optimizer="rmsprop", lr=0.01, steps=8, progress=False)
    part = SequenceGenerator(4, "gru", 5, note_offset=60, seed=0)
    part.fit(seqs, batch_size=2, optimizer="rmsprop", lr=0.01, steps=4, checkpoint_dir=tmp_path / "ck",
             progress=False)
    again, ck = SequenceGenerator.load(tmp_path / "ck", return_checkpoint=True)
    again.fit(seqs, batch_size=2, optimizer="rmsprop", lr=0.01, steps=8, resume=ck, progress=False)
    for k in full.params:
        assert np.allclose(again.params[k], full.params[k], rtol=1e-6, atol=1e-7), k


def test_bad_input_raises_clear_errors():
    model = SequenceGenerator(88, "rnn", 4, seed=0)
    with pytest.raises(DataError, match=r"sequence 1, step 2: MIDI note 12 is outside the range 21\.\.108"):
        model.encode_all([[[60]], [[60], [61], [12]]])
    with pytest.raises(DataError, match="empty sequence"):
        model.evaluate([[[60]], []])
    with pytest.raises(DataError, match=r"outside the model's range"):
        wide = np.zeros((2, 128), np.uint8)
        wide[1, 110] = 1
        model.encode(wide)
    with pytest.raises(ShapeError, match="primer"):
        model.generate(1, 4, primer=np.zeros((3, 5)))
    with pytest.raises(ConfigError, match="note_offset"):
        SequenceGenerator(88, note_offset=50)
    with pytest.raises(ConfigError, match="temperature"):
        model.generate(1, 4, temperature=0)
    with pytest.raises(ConfigError, match="cell"):
        SequenceGenerator(10, "transformer", note_offset=0)


def test_full_midi_roll_maps_to_the_models_columns():
    model = SequenceGenerator(88, "rnn", 4, seed=0)
    wide = np.zeros((2, 128), np.uint8)
    wide[0, 21] = wide[1, 108] = wide[1, 60] = 1
    assert model.decode(model.encode(wide)) == [[21], [60, 108]]
