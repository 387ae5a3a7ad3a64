"""Allow ``python -m studies.cli``."""

import sys

from studies.cli import main

sys.exit(main())
