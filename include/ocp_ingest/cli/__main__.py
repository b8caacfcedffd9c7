"""``python -m ocp_ingest.cli``: the same as the ``ocp-ingest`` command."""

import sys

from ocp_ingest.cli import main

sys.exit(main())
