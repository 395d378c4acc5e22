"""What every model shares: parameters gathered from its layers, train/eval mode, checkpoints.

A model is a few named layers (``embedding``, ``rnn``, ``head`` ...); its ``params``/``grads`` are their
mappings under dotted prefixes, so the optimisers, clipping, checkpoints and gradient checks of the
layers work on whole models unchanged. ``save(dir)`` writes a checkpoint (design.md: safetensors + JSON
with config, vocabularies, step, optimiser and RNG state); ``load(dir)`` rebuilds the model from the
config and checks every array's key, shape and dtype before using it.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..core import accel
from ..core.errors import CheckpointError
from ..core.params import ParamDict
from ..io.checkpoint import check_arrays, load_checkpoint, save_checkpoint
from ..training.loop import History, TrainConfig, train

MODELS: dict[str, type["Model"]] = {}


class Model:
    """Base class of the models. Subclasses set ``kind``, build layers, then call :meth:`_register`."""

    kind: ClassVar[str] = "model"

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if cls.kind != "model":
            MODELS[cls.kind] = cls

    def _register(self, **layers) -> None:
        self._layers = {k: v for k, v in layers.items() if v is not None}
        self.params = ParamDict.merged({k: v.params for k, v in self._layers.items()})
        self.grads = ParamDict.merged({k: v.grads for k, v in self._layers.items()})
        self.training = True

    def zero_grad(self) -> None:
        accel.zero(self.grads.values())

    def train(self, mode: bool = True) -> "Model":
        self.training = mode
        for layer in self._layers.values():
            layer.train(mode)
        return self

    def eval(self) -> "Model":
        return self.train(False)

    def num_parameters(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    # ----------------------------------------------------------------- config
    def config(self) -> dict[str, Any]:  # pragma: no cover - interface
        """JSON-able constructor arguments (everything except vocabularies)."""
        raise NotImplementedError

    def meta(self) -> dict[str, Any]:
        """JSON-able extras needed to rebuild the model (vocabularies, label sets)."""
        return {}

    @classmethod
    def from_config(cls, config: dict, meta: dict) -> "Model":  # pragma: no cover - interface
        raise NotImplementedError

    # ------------------------------------------------------------ checkpoints
    def _rngs(self) -> dict[str, np.random.Generator]:  # pragma: no cover - interface
        """The model's random generators by name (dropout, shuffling ...): saved to resume exactly."""
        raise NotImplementedError

    def _training_arrays(self) -> dict[str, dict[str, np.ndarray]]:
        """Extra array groups a training checkpoint needs besides the weights and the optimiser."""
        return {}

    def save_training(self, directory, optimizer, data, history, config, *,
                      extra_meta: dict | None = None) -> str:
        """A checkpoint that resumes exactly: weights, optimiser, data position, RNG states, history (and
        ``extra_meta``, e.g. the command line's data settings)."""
        opt_arrays, opt_meta = optimizer.state_dict()
        meta = {"step": history.step, "optimizer": opt_meta, "data_state": data.state,
                "rng": {k: r.bit_generator.state for k, r in self._rngs().items()},
                "history": history.to_dict(), "train_config": config.to_dict(), **(extra_meta or {})}
        return self.save(directory, meta=meta, extra_arrays={"optim": opt_arrays, **self._training_arrays()})

    def restore_training(self, ck, optimizer, data):
        """Put a :meth:`save_training` checkpoint's optimiser, data position and RNG states back; returns
        its :class:`~seqmodels.training.loop.History`."""
        optimizer.load_state_dict(ck.extra.get("optim", {}), ck.meta["optimizer"])
        data.load_state(ck.meta["data_state"])
        for key, r in self._rngs().items():
            r.bit_generator.state = ck.meta["rng"][key]
        return History.from_dict(ck.meta["history"])

    def run_training(self, data, validation_loss, config: TrainConfig, *, checkpoint_dir=None, resume=None,
                     progress=True, on_eval=None, on_step=None, checkpoint_meta: dict | None = None) -> History:
        """What every model's ``fit`` does once it has its batches: build the optimiser, continue ``resume``
        (a :meth:`load`-ed checkpoint) exactly, and run :func:`~seqmodels.training.loop.train` with
        ``validation_loss()`` (None: no validation; ``on_eval(step, loss)`` after each) and a
        :meth:`save_training` checkpoint in ``checkpoint_dir`` (with ``checkpoint_meta``)."""
        opt = config.make_optimizer(self.params, self.grads)
        history = self.restore_training(resume, opt, data) if resume is not None else History()

        def validate():
            value = validation_loss()
            if on_eval is not None:
                on_eval(history.step, value)
            return value

        def checkpoint(step):
            self.save_training(checkpoint_dir, opt, data, history, config, extra_meta=checkpoint_meta)

        return train(self, data, config, validate=validate if validation_loss is not None else None,
                     checkpoint=checkpoint if checkpoint_dir is not None else None, on_step=on_step,
                     optimizer=opt, history=history, progress=progress)

    def save(self, directory, *, meta: dict | None = None, extra_arrays: dict | None = None) -> str:
        """Write this model (and the given training state) as a checkpoint directory, atomically."""
        arrays = {k: np.ascontiguousarray(v) for k, v in self.params.items()}
        full_meta = dict(self.meta())
        full_meta.update(meta or {})
        return save_checkpoint(directory, arrays=arrays, meta=full_meta, kind=self.kind, config=self.config(),
                               extra_arrays=extra_arrays)

    @classmethod
    def load(cls, directory, *, return_checkpoint: bool = False):
        """Rebuild a model saved with :meth:`save`; strict key/shape/dtype checks name what is wrong."""
        expected = None if cls is Model else cls.kind
        ck = load_checkpoint(directory, expected_kind=expected)
        model_cls = MODELS.get(ck.kind)
        if model_cls is None:
            raise CheckpointError(f"{directory}: unknown model kind {ck.kind!r}; known: {sorted(MODELS)}")
        try:
            model = model_cls.from_config(ck.config, ck.meta)
        except CheckpointError:
            raise
        except (TypeError, ValueError, KeyError) as e:
            raise CheckpointError(f"{directory}: config/meta do not describe a valid {ck.kind}: {e}") from e
        check_arrays(ck.arrays, {k: (v.shape, v.dtype) for k, v in model.params.items()}, directory)
        for k, v in ck.arrays.items():
            if not np.isfinite(v).all():
                raise CheckpointError(f"{directory}: array {k!r} holds NaN or inf")
            model.params[k] = v
        return (model, ck) if return_checkpoint else model


def load_model(directory):
    """Load any model from its checkpoint directory (the kind is read from the checkpoint)."""
    return Model.load(directory)
