"""``python -m ocp_ingest_dev.simulator [options]``: the simulator without the full ``ocp-ingest`` CLI."""

from __future__ import annotations

import sys

from ocp_ingest_dev.simulator.cli import main

sys.exit(main())
