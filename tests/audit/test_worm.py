"""WORM: with Object Lock configured, every S3 recording write carries its retention (moto server)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from airflow.sdk import ObjectStoragePath

from ocp_ingest.config import Settings
from ocp_ingest.storage import StorageLayout, write_create_only
from tests.storage.conftest import S3_CONN_ID, s3_client  # noqa: F401  (fixture)


def test_recording_writes_set_object_lock_retention_per_lob(
    s3_client,  # noqa: F811  (the imported fixture)
    ingest_home,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = f"worm-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(
        Bucket=bucket,
        CreateBucketConfiguration={"LocationConstraint": "eu-west-1"},
        ObjectLockEnabledForBucket=True,  # only possible at creation; turns versioning on
    )
    monkeypatch.setenv("OCP_INGEST_RECORDINGS_URL", f"s3://{S3_CONN_ID}@{bucket}")
    monkeypatch.setenv("OCP_INGEST_OBJECT_LOCK_MODE", "compliance")
    monkeypatch.setenv("OCP_INGEST_OBJECT_LOCK_DAYS", '{"default": 3650, "cards": 2555}')
    layout = StorageLayout.from_settings(Settings.from_env())
    body = b"RIFF" + bytes(range(256)) * 8
    sha = hashlib.sha256(body).hexdigest()
    for lob, days in (("retail", 3650), ("cards", 2555)):
        dest = layout.recording_path(
            lob=lob,
            ocp_group="ocp-banking",
            dialog_id="A" * 32,
            call_start=datetime(2026, 11, 24, tzinfo=UTC),
        )
        write_create_only(dest, [body], expected_sha256=sha, object_lock=layout.object_lock_for(lob))
        key = ObjectStoragePath(str(dest)).key
        # HeadObject reports the retention; moto 5.2.5 answers GetObjectRetention with a 500 here.
        head = s3_client.head_object(Bucket=bucket, Key=key)
        assert head["ObjectLockMode"] == "COMPLIANCE"
        until = head["ObjectLockRetainUntilDate"]
        assert abs(until - (datetime.now(UTC) + timedelta(days=days))) < timedelta(hours=1)


def test_object_lock_settings_are_validated(ingest_home, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCP_INGEST_OBJECT_LOCK_MODE", "forever")
    with pytest.raises(ValueError, match="OBJECT_LOCK_MODE"):
        Settings.from_env()
    monkeypatch.setenv("OCP_INGEST_OBJECT_LOCK_MODE", "GOVERNANCE")
    monkeypatch.setenv("OCP_INGEST_OBJECT_LOCK_DAYS", "{not json")
    with pytest.raises(ValueError, match="OBJECT_LOCK_DAYS"):
        Settings.from_env()
    monkeypatch.setenv("OCP_INGEST_OBJECT_LOCK_DAYS", "30")
    assert Settings.from_env().object_lock_days_for("retail") == 30
