"""Benchmarks: ``fastgrad bench`` (report.py: the speed targets of the parallel and sequential
approaches side by side with their peers; also ``python -m fastgrad.bench``) and the cases and
clock every harness shares (cases.py: ``fastgrad bench``, the asv suite and the pytest
benchmarks)."""
