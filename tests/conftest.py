import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path | None:
    """The shared benchmark data (../shared/data), or $SEQMODELS_DATA; None when absent."""
    env = os.environ.get("SEQMODELS_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture
def shared_data() -> Path:
    path = data_dir()
    if path is None:
        pytest.skip("shared data folder not found (set SEQMODELS_DATA)")
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _threads_restored():
    """The command line's --threads (run in-process by the CLI tests, also from their module fixtures)
    sets seqmodels' threads for the whole process; after every test seqmodels follows the BLAS again and
    the BLAS has the threads it had before (``set_threads(None)``; nothing to do when it was not set)."""
    yield
    from seqmodels.core import accel
    accel.set_threads(None)
