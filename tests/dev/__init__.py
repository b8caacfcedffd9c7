"""Tests of the dev harness (ocp_ingest_dev): simulator, demo, local stack, fault scenarios."""
