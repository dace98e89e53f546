"""fastgrad's benchmarks: the airspeed-velocity suite (``suite.py``, configured by the
repository's ``asv.conf.json``) and pytest-benchmark micro-benchmarks (``test_*.py``, run with
``pytest benchmarks -o addopts="" --benchmark-only``)."""
