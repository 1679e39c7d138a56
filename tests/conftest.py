"""pytest set-up shared by every test module.

The compiled plugin must import in a test run: a broken build or a torch mismatch fails the whole run here
instead of turning plugin tests into skips.
"""
import os
import sys

import nnforce

nnforce.NNForce  # raises ImportError with instructions when the plugin is not built

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tests import plugin_helpers, conftest_analysis
