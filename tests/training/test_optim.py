"""Tests for seqmodels.training.optim: hand-computed steps, PyTorch update sequences, in-place
updates on views, checkpoints and validation."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest

from seqmodels.core.errors import CheckpointError, ConfigError, DTypeError, ShapeError
from seqmodels.training.optim import OPTIMIZERS, SGD, Adagrad, Adam, Optimizer, RMSProp, make_optimizer


def scalar_run(cls, grads_seq, p0=1.0, **kw):
    """Run ``cls`` on one scalar parameter; return the parameter after each step."""
    p, g = np.array([p0]), np.zeros(1)
    opt = cls({"w": p}, {"w": g}, **kw)
    out = []
    for value in grads_seq:
        g[0] = value
        opt.step()
        out.append(float(p[0]))
    return out


# ------------------------------------------------------------------- hand-computed two steps


def test_sgd_plain_and_weight_decay_by_hand():
    assert scalar_run(SGD, [1.0, 2.0], lr=0.1) == pytest.approx([0.9, 0.7], abs=1e-15)
    # g = grad + 0.5 p: step 1 g = 1.5 -> p = 0.85; step 2 g = 1 + 0.425 -> p = 0.7075
    assert scalar_run(SGD, [1.0, 1.0], lr=0.1, weight_decay=0.5) == pytest.approx([0.85, 0.7075], abs=1e-15)


def test_sgd_momentum_by_hand():
    # v = 1, p = 0.9; v = 1.9, p = 0.71
    assert scalar_run(SGD, [1.0, 1.0], lr=0.1, momentum=0.9) == pytest.approx([0.9, 0.71], abs=1e-15)
    # nesterov: v = 1, d = 1 + 0.9 = 1.9 -> 0.81; v = 1.9, d = 1 + 1.71 -> 0.81 - 0.271 = 0.539
    got = scalar_run(SGD, [1.0, 1.0], lr=0.1, momentum=0.9, nesterov=True)
    assert got == pytest.approx([0.81, 0.539], abs=1e-15)


def test_adagrad_by_hand():
    # G = 1 -> p = 1 - 0.1; G = 5 -> p -= 0.1 * 2 / sqrt(5)
    got = scalar_run(Adagrad, [1.0, 2.0], lr=0.1, eps=1e-300)
    assert got == pytest.approx([0.9, 0.8105572809000084], abs=1e-14)


def test_rmsprop_by_hand():
    # s = 0.5 -> u = 1/sqrt(0.5); s = 0.75 -> u = 1/sqrt(0.75)
    got = scalar_run(RMSProp, [1.0, 1.0], lr=0.1, rho=0.5, eps=1e-300)
    assert got == pytest.approx([1 - 0.1 / 0.5 ** 0.5, 0.7431085899247654], abs=1e-14)
    # momentum 0.5: b = u1; b = 0.5 u1 + u2
    u1, u2 = 1 / 0.5 ** 0.5, 1 / 0.75 ** 0.5
    got = scalar_run(RMSProp, [1.0, 1.0], lr=0.1, rho=0.5, eps=1e-300, momentum=0.5)
    assert got == pytest.approx([1 - 0.1 * u1, 1 - 0.1 * u1 - 0.1 * (0.5 * u1 + u2)], abs=1e-14)


def test_adam_by_hand():
    # step 1: m̂ = 1, v̂ = 1 -> p = 0.9. step 2 (g = 3): m = 1.75, v = 2.4375,
    # m̂ = 1.75 / 0.75, v̂ = 2.4375 / 0.4375 -> p = 0.9 - 0.1 * m̂ / sqrt(v̂)
    got = scalar_run(Adam, [1.0, 3.0], lr=0.1, betas=(0.5, 0.75), eps=1e-300)
    assert got == pytest.approx([0.9, 0.8011461696640956], abs=1e-14)


def test_adamw_decoupled_by_hand():
    # p ← p (1 - lr λ) then the plain Adam step: 1 * (1 - 0.1*0.5) - 0.1 = 0.85
    got = scalar_run(Adam, [1.0], lr=0.1, weight_decay=0.5, decoupled_weight_decay=True, eps=1e-300)
    assert got == pytest.approx([0.85], abs=1e-15)
    # coupled: g = 1 + 0.5 = 1.5, first Adam step moves by lr regardless of |g|
    assert scalar_run(Adam, [1.0], lr=0.1, weight_decay=0.5, eps=1e-300) == pytest.approx([0.9], abs=1e-15)


# --------------------------------------------------------------------------- PyTorch oracle

TORCH_CASES = [
    ("sgd", dict(lr=0.1), "SGD", dict(lr=0.1)),
    ("sgd", dict(lr=0.1, momentum=0.9), "SGD", dict(lr=0.1, momentum=0.9)),
    ("sgd", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
     "SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01)),
    ("adagrad", dict(lr=0.1, eps=1e-10, weight_decay=0.02), "Adagrad", dict(lr=0.1, eps=1e-10, weight_decay=0.02)),
    ("rmsprop", dict(lr=0.01, rho=0.9, eps=1e-8), "RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-8)),
    ("rmsprop", dict(lr=0.01, rho=0.95, eps=1e-6, momentum=0.5, weight_decay=0.01),
     "RMSprop", dict(lr=0.01, alpha=0.95, eps=1e-6, momentum=0.5, weight_decay=0.01)),
    ("adam", dict(lr=0.01), "Adam", dict(lr=0.01)),
    ("adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
     "Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("adam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True),
     "AdamW", dict(lr=0.01, weight_decay=0.1)),
]


@pytest.mark.parametrize("name, kw, torch_name, torch_kw", TORCH_CASES)
def test_update_sequence_matches_torch(name, kw, torch_name, torch_kw):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    shapes = {"W": (4, 3), "b": (4,)}
    params = {k: rng.standard_normal(s) for k, s in shapes.items()}
    grads = {k: np.zeros(s) for k, s in shapes.items()}
    tparams = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    opt = make_optimizer(name, params, grads, **kw)
    topt = getattr(torch.optim, torch_name)(list(tparams.values()), **torch_kw)
    for step in range(7):
        if step == 4:                                 # a schedule changing lr mid-run
            opt.lr = kw["lr"] / 2
            for group in topt.param_groups:
                group["lr"] = kw["lr"] / 2
        for k in shapes:
            g = rng.standard_normal(shapes[k])
            grads[k][...] = g
            tparams[k].grad = torch.tensor(g)
        opt.step()
        topt.step()
        for k in shapes:
            np.testing.assert_allclose(params[k], tparams[k].detach().numpy(), rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------- in place, dtypes, memory


def fused_case(dtype=np.float64):
    fused = np.arange(24, dtype=dtype).reshape(6, 4) / 10
    params = {"W_u": fused[:3], "W_c": fused[3:, :3], "b": fused[3:, 3]}   # row, strided, column views
    grads = {k: np.ones_like(v) for k, v in params.items()}
    return fused, params, grads


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_updates_views_of_a_fused_matrix_in_place(name):
    fused, params, grads = fused_case()
    before = fused.copy()
    ids = {k: id(v) for k, v in params.items()}
    opt = make_optimizer(name, params, grads, lr=0.1, weight_decay=0.01)
    opt.step()
    assert {k: id(v) for k, v in params.items()} == ids
    assert all(np.shares_memory(v, fused) for v in params.values())
    assert np.all(fused != before)                    # every element got its update, through the views
    np.testing.assert_array_equal(grads["W_u"], 1.0)  # gradients are not modified


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_float32_params_and_slots(name):
    fused32, p32, g32 = fused_case(np.float32)
    fused64, p64, g64 = fused_case(np.float64)
    kw = dict(lr=0.01, momentum=0.9) if name in ("sgd", "rmsprop") else dict(lr=0.01)
    o32, o64 = make_optimizer(name, p32, g32, **kw), make_optimizer(name, p64, g64, **kw)
    for _ in range(5):
        o32.step()
        o64.step()
    assert fused32.dtype == np.float32
    np.testing.assert_allclose(fused32, fused64, rtol=1e-5, atol=1e-6)
    arrays, _ = o32.state_dict()
    assert arrays and all(a.dtype == np.float32 for a in arrays.values())


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_step_does_not_allocate_parameter_sized_arrays(name):
    p, g = np.ones((500, 500)), np.full((500, 500), 0.1)           # 2 MB each
    kw = dict(momentum=0.9) if name in ("sgd", "rmsprop") else {}
    opt = make_optimizer(name, {"W": p}, {"W": g}, lr=0.01, weight_decay=0.01, **kw)
    opt.step()
    tracemalloc.start()
    try:
        opt.step()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < p.nbytes / 10


def test_step_reads_the_current_mappings():
    p, g = np.zeros(2), np.ones(2)
    grads = {"w": g}
    opt = SGD({"w": p}, grads, lr=1.0)
    grads["w"] = np.full(2, 3.0)                      # a model that swapped its gradient array
    opt.step()
    np.testing.assert_array_equal(p, [-3.0, -3.0])
    grads["w"] = np.ones(3)
    with pytest.raises(ShapeError, match="'w'"):
        opt.step()


def test_zero_grad_fills_in_place():
    g = np.ones(3)
    opt = SGD({"w": np.zeros(3)}, {"w": g}, lr=1.0)
    opt.zero_grad()
    assert not g.any()


# ------------------------------------------------------------------------------- checkpoints


def run_steps(opt, grads, rng, n):
    for _ in range(n):
        for g in grads.values():
            g[...] = rng.standard_normal(g.shape)
        opt.step()


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_state_dict_round_trip_resumes_exactly(name):
    kw = dict(lr=0.01, momentum=0.9) if name in ("sgd", "rmsprop") else dict(lr=0.01)
    _, params, grads = fused_case()
    opt = make_optimizer(name, params, grads, **kw)
    run_steps(opt, grads, np.random.default_rng(1), 3)
    opt.lr = 0.005
    arrays, meta = opt.state_dict()
    meta = json.loads(json.dumps(meta))
    assert meta["name"] == name and meta["step"] == 3 and meta["hyper"]["lr"] == 0.005
    assert all(key.split(".", 1)[1] in params for key in arrays)
    params2 = {k: v.copy() for k, v in params.items()}
    grads2 = {k: v.copy() for k, v in grads.items()}
    opt2 = make_optimizer(meta["name"], params2, grads2, **meta["hyper"])
    opt2.load_state_dict(arrays, meta)
    assert opt2.step_count == 3 and opt2.lr == 0.005
    for _ in range(2):
        opt.step()
        opt2.step()
    for k in params:
        np.testing.assert_array_equal(params[k], params2[k])


def test_state_dict_names_and_copies():
    _, params, grads = fused_case()
    params = {"layers.0.W_f": params["W_u"]}
    grads = {"layers.0.W_f": grads["W_u"]}
    opt = Adam(params, grads, lr=0.1)
    opt.step()
    arrays, meta = opt.state_dict()
    assert sorted(arrays) == ["m.layers.0.W_f", "v.layers.0.W_f"]
    arrays["m.layers.0.W_f"][...] = 99.0              # a snapshot, not the live slot
    assert opt.state_dict()[0]["m.layers.0.W_f"].max() < 99
    assert meta == {"name": "adam", "version": 1, "step": 1, "hyper": opt.hyperparameters()}


def test_load_state_dict_is_strict_and_atomic():
    p, g = {"a": np.zeros(2), "b": np.zeros(3)}, {"a": np.ones(2), "b": np.ones(3)}
    opt = Adam(p, g, lr=0.1)
    opt.step()
    arrays, meta = opt.state_dict()
    with pytest.raises(CheckpointError, match="'sgd'"):
        opt.load_state_dict(arrays, {**meta, "name": "sgd"})
    with pytest.raises(CheckpointError, match="v.b"):
        opt.load_state_dict({k: v for k, v in arrays.items() if k != "v.b"}, meta)
    with pytest.raises(CheckpointError, match="extra.a"):
        opt.load_state_dict({**arrays, "extra.a": np.zeros(2)}, meta)
    with pytest.raises(CheckpointError, match="step"):
        opt.load_state_dict(arrays, {**meta, "step": -1})
    before = {k: v.copy() for k, v in opt.state_dict()[0].items()}
    bad = {k: v + 1 for k, v in arrays.items()}
    bad["v.b"] = np.zeros(4)
    with pytest.raises(CheckpointError, match=r"'v.b'.*\(3,\).*\(4,\)"):
        opt.load_state_dict(bad, meta)
    for k, v in opt.state_dict()[0].items():          # nothing was half-loaded
        np.testing.assert_array_equal(v, before[k])


# -------------------------------------------------------------------------------- validation


@pytest.mark.parametrize("lr", [0, -1.0, float("nan"), float("inf"), "fast", True, None])
def test_invalid_lr(lr):
    with pytest.raises(ConfigError, match="lr"):
        SGD({"w": np.zeros(1)}, {"w": np.zeros(1)}, lr=lr)


def test_lr_setter_allows_zero_but_not_negative():
    opt = Adam({"w": np.zeros(1)}, {"w": np.ones(1)}, lr=0.1)
    opt.lr = 0.0                                      # schedules may anneal to exactly 0
    opt.step()
    with pytest.raises(ConfigError, match="lr"):
        opt.lr = -0.1
    assert opt.lr == 0.0


@pytest.mark.parametrize(
    "cls, kw, match",
    [
        (SGD, dict(momentum=1.0), "momentum"),
        (SGD, dict(momentum=-0.1), "momentum"),
        (SGD, dict(nesterov=True), "nesterov"),
        (SGD, dict(weight_decay=-1), "weight_decay"),
        (Adagrad, dict(eps=0), "eps"),
        (RMSProp, dict(rho=1.0), "rho"),
        (RMSProp, dict(momentum=1.5), "momentum"),
        (Adam, dict(betas=(0.9,)), "betas"),
        (Adam, dict(betas=(0.9, 1.0)), r"betas\[1\]"),
        (Adam, dict(eps=-1e-8), "eps"),
    ],
)
def test_invalid_hyperparameters(cls, kw, match):
    with pytest.raises(ConfigError, match=match):
        cls({"w": np.zeros(1)}, {"w": np.zeros(1)}, lr=0.1, **kw)


def test_invalid_params_and_grads():
    z = np.zeros(2)
    with pytest.raises(DTypeError, match="params"):
        SGD([z], {"w": z}, lr=0.1)
    with pytest.raises(ConfigError, match="params"):
        SGD({}, {}, lr=0.1)
    with pytest.raises(ConfigError, match=r"missing \['w'\].*unexpected \['v'\]"):
        SGD({"w": z}, {"v": z}, lr=0.1)
    with pytest.raises(ShapeError, match=r"grads\['w'\].*\(2,\).*\(3,\)"):
        SGD({"w": z}, {"w": np.zeros(3)}, lr=0.1)
    with pytest.raises(DTypeError, match=r"params\['w'\].*int64"):
        SGD({"w": np.zeros(2, np.int64)}, {"w": z}, lr=0.1)
    with pytest.raises(DTypeError, match=r"grads\['w'\].*list"):
        SGD({"w": z}, {"w": [0.0, 0.0]}, lr=0.1)
    ro = np.zeros(2)
    ro.flags.writeable = False
    with pytest.raises(ConfigError, match="read-only"):
        SGD({"w": ro}, {"w": z}, lr=0.1)


def test_registry_and_make_optimizer_errors():
    assert OPTIMIZERS == {"sgd": SGD, "adagrad": Adagrad, "rmsprop": RMSProp, "adam": Adam}
    assert all(issubclass(c, Optimizer) and c.name == n for n, c in OPTIMIZERS.items())
    p, g = {"w": np.zeros(1)}, {"w": np.zeros(1)}
    with pytest.raises(ConfigError, match="'adamw'"):
        make_optimizer("adamw", p, g, lr=0.1)
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['beta1'\]"):
        make_optimizer("adam", p, g, lr=0.1, beta1=0.9)
    with pytest.raises(ConfigError, match="lr is required"):
        make_optimizer("sgd", p, g)


# ---------------------------------------------------------------- weight averaging
def test_weight_average_is_the_ramped_moving_average_of_the_weights():
    _, params, grads = fused_case()
    opt = make_optimizer("sgd", params, grads, lr=0.1, average=0.9)
    rng = np.random.default_rng(0)
    want = {k: v.copy() for k, v in params.items()}                 # the average starts at the weights
    for t in range(1, 30):
        run_steps(opt, grads, rng, 1)
        d = min(0.9, (1 + t) / (10 + t))
        for k in want:
            want[k] = d * want[k] + (1 - d) * params[k]
    raw = {k: v.copy() for k, v in params.items()}
    with opt.averaged():
        for k in want:
            np.testing.assert_allclose(params[k], want[k], rtol=1e-12, err_msg=k)
    for k in raw:
        np.testing.assert_array_equal(params[k], raw[k])              # the trained weights are back
    opt.apply_average()
    for k in want:
        np.testing.assert_allclose(params[k], want[k], rtol=1e-12)
    opt.apply_average()                                                # idempotent
    opt.resume_weights()
    for k in raw:
        np.testing.assert_array_equal(params[k], raw[k])


def test_weight_average_survives_the_state_dict_and_is_off_by_default():
    _, params, grads = fused_case()
    opt = make_optimizer("adam", params, grads, lr=0.01, average=0.95)
    run_steps(opt, grads, np.random.default_rng(2), 4)
    opt.apply_average()
    arrays, meta = opt.state_dict()
    meta = json.loads(json.dumps(meta))
    assert meta["hyper"]["average"] == 0.95 and meta["average_applied"] is True
    assert {k.split(".", 1)[0] for k in arrays} == {"m", "v", "average"}
    params2 = {k: v.copy() for k, v in params.items()}
    grads2 = {k: v.copy() for k, v in grads.items()}
    opt2 = make_optimizer(meta["name"], params2, grads2, **meta["hyper"])
    opt2.load_state_dict(arrays, meta)
    for o in (opt, opt2):
        o.resume_weights()
        run_steps(o, grads if o is opt else grads2, np.random.default_rng(3), 2)
    for k in params:
        np.testing.assert_array_equal(params[k], params2[k])
    with opt.averaged(), opt2.averaged():
        for k in params:
            np.testing.assert_array_equal(params[k], params2[k])
    plain = make_optimizer("adam", params, grads, lr=0.01)
    assert "average" not in plain.hyperparameters() and not any(k.startswith("average.") for k in plain.state_dict()[0])
    with pytest.raises(CheckpointError, match="average"):
        plain.load_state_dict(arrays, meta)                            # averages it does not keep


@pytest.mark.parametrize("bad", [0.0, 1.0, 1.5, -0.1])
def test_weight_average_decay_must_be_between_0_and_1(bad):
    _, params, grads = fused_case()
    with pytest.raises(ConfigError, match="average"):
        make_optimizer("sgd", params, grads, lr=0.1, average=bad)
