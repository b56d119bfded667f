"""``python -m pytest_crewguard``: the ``crewguard`` command."""

import sys

from .cli import main

sys.exit(main())
