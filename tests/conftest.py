"""pytest set-up shared by every test module.

The compiled plugin must import in a test run: a broken build or a torch mismatch fails the whole run here
instead of turning plugin tests into skips.
"""
import os
import sys

import pytest
import torch

import nnforce

nnforce.NNForce  # raises ImportError with instructions when the plugin is not built

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tests import plugin_helpers, conftest_analysis


@pytest.fixture
def one_torch_thread():
    """Tiny models: one torch thread avoids oversubscribing a small CI machine (values do not change)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
