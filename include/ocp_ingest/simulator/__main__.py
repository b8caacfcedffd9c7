"""``python -m ocp_ingest.simulator [options]``: the simulator without the full ``ocp-ingest`` CLI."""

from __future__ import annotations

import sys

from ocp_ingest.simulator.cli import main

sys.exit(main())
