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
