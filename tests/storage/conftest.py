"""Storage roots for the contract tests: local disk and S3 (moto server on loopback)."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import boto3
import pytest

S3_CONN_ID = "aws_moto"


@pytest.fixture(scope="session")
def s3_client(moto_endpoint: str):
    # ObjectStoragePath("s3://aws_moto@bucket/...") resolves this Airflow Connection from the environment.
    os.environ[f"AIRFLOW_CONN_{S3_CONN_ID.upper()}"] = json.dumps(
        {"conn_type": "aws", "extra": {"endpoint_url": moto_endpoint, "region_name": "eu-west-1"}}
    )
    return boto3.client("s3", endpoint_url=moto_endpoint, region_name="eu-west-1")


@pytest.fixture
def s3_bucket(s3_client) -> str:
    name = f"rec-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    return name


@pytest.fixture(params=["file", "s3"])
def storage_root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A root URL; tests build every path under it."""
    if request.param == "file":
        return (tmp_path / "store").as_uri()
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{S3_CONN_ID}@{bucket}"
