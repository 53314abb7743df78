"""fuzz/: the request parser through cffi, built on demand."""
import os
import pathlib
import sys

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

# "ci" (the default) is derandomized: every run explores the same examples,
# so a red CI means a change broke something, not that the dice found a new
# case; "long" (HYPOTHESIS_PROFILE=long) explores freely.
settings.register_profile("ci", max_examples=300, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=20000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
