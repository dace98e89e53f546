"""python -m fastgrad.bench: ``fastgrad bench`` (fastgrad/bench/report.py)."""
import sys

from ..cli import main

sys.exit(main(["bench", *sys.argv[1:]]))
