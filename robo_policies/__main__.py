"""``python -m robo_policies`` is the ``robo`` command."""

import sys

from robo_policies.cli.main import main

sys.exit(main())
