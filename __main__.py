"""Allow ``python -m trainsim``: the command line."""

import sys

from trainsim.studies.cli import main

sys.exit(main())
