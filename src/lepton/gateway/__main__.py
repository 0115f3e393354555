"""``python -m lepton.gateway``: see :mod:`lepton.gateway.process`."""

import sys

from lepton.gateway.process import main

sys.exit(main())
