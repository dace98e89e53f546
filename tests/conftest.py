"""pytest configuration: hypothesis draws the same examples on every run by default, so that CI
is repeatable; HYPOTHESIS_PROFILE=explore draws new ones each run. The test helpers live in
helpers.py."""
import os

from hypothesis import settings

settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))
