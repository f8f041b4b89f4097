import os
from pathlib import Path

import pyro
import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _real_data_root():
    root = os.environ.get("PYRO_PARTIAL_DATA")
    if root:
        return Path(root)
    return SHARED_DATA if SHARED_DATA.exists() else None


@pytest.fixture
def real_data_root():
    """The directory with the real data sets; tests needing it are skipped where it is absent."""
    root = _real_data_root()
    if root is None or not root.is_dir():
        pytest.skip(f"real data not found at {root}: set PYRO_PARTIAL_DATA or provide ../shared/data")
    return root.resolve()


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """One private cache directory for the whole test session (never the user's cache)."""
    old = os.environ.get("PYRO_PARTIAL_CACHE")
    os.environ["PYRO_PARTIAL_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("PYRO_PARTIAL_CACHE", None)
    else:
        os.environ["PYRO_PARTIAL_CACHE"] = old


@pytest.fixture(autouse=True)
def _pyro_test_state():
    """Fresh param store, validation on and a fixed seed for every test."""
    pyro.clear_param_store()
    pyro.enable_validation(True)
    pyro.set_rng_seed(0)
    torch.set_default_dtype(torch.float32)
    yield
    pyro.clear_param_store()


@pytest.fixture
def single_thread():
    """Train tiny networks on one thread: on a shared, loaded 2-core machine it is several times faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def float64():
    """float64 as the default dtype (Pyro's practice for checking objectives; Pyro's ``obs_mask`` gives masked
    rows default-dtype zeros, so the default must match the model's dtype too)."""
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)
