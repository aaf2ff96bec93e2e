"""``python -m estlab ...`` is the ``estlab`` command."""
import sys

from estlab.cli import main

sys.exit(main())
