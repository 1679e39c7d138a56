"""``python -m nnforce.cli``: the ``nnforce`` command."""
import sys

from . import main

sys.exit(main())
