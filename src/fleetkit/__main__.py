"""``python -m fleetkit`` is the ``fleetkit`` command."""

import sys

from fleetkit.cli import main

sys.exit(main())
