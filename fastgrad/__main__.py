"""python -m fastgrad: the command line (see fastgrad.cli)."""
import sys

from .cli import main

sys.exit(main())
