import importlib.util
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))  # for oracles.py

SHARED_DATASETS = TESTS.parents[1] / "shared" / "datasets"


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """The real datasets beside the project (``../shared/datasets``), or a skip."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATASETS}")
    return SHARED_DATASETS


def load_data_script(name: str):
    """The module ``data_scripts/NAME.py`` (the scripts are not a package), for tests that call its functions."""
    spec = importlib.util.spec_from_file_location(name, TESTS.parent / "data_scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
