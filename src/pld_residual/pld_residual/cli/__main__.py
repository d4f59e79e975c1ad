"""`python -m pld_residual.cli` is `pld`."""

import sys

from pld_residual.cli.main import main

sys.exit(main())
