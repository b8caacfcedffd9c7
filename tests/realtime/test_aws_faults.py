"""Realtime on S3 and DynamoDB while AWS has a bad day: moto's server behind a fault-injecting proxy.

A share of S3 requests get ``SlowDown``/``InternalError`` and of DynamoDB requests
``ProvisionedThroughputExceeded``/``Throttling``/``InternalServerError``, some of them after the request was
applied (the client retries a write that happened). OCP pushes every call through the real receiver and
pushes again what was not acknowledged; the realtime batch runs until landing is empty, a run that meets a
platform fault failing as a whole (Airflow retries it). Then: every call stored once with its bytes, the
ledger agrees with the objects, no object outside the calls' keys, no multipart upload left open.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import boto3
import httpx
import pytest

from ocp_ingest.config import Settings
from ocp_ingest.infrastructure import is_outage
from ocp_ingest.ledger import CallStatus, open_ledger
from ocp_ingest.ocp import wire
from ocp_ingest.realtime import RealtimeProcessor, list_arrivals
from ocp_ingest.receiver import auth as signing
from ocp_ingest.receiver.app import create_app
from ocp_ingest.receiver.server import start_receiver
from ocp_ingest.report.verify import verify
from ocp_ingest.storage import StorageLayout
from ocp_ingest_dev.aws_faults import AwsFaults, proxy_app
from ocp_ingest_dev.simulator import audio
from ocp_ingest_dev.simulator.calls import SimCall, generate_calls
from ocp_ingest_dev.simulator.server import start_asgi

SECRET = "whsec_dGVzdC1zZWNyZXQtZm9yLXRoZS1yZWNlaXZlcg=="
REGION = "eu-west-1"
CONN_ID = "aws_faulty"


@dataclass
class Aws:
    moto: str
    proxy: str
    faults: AwsFaults
    buckets: dict[str, str]
    table: str


@pytest.fixture
def aws(moto_endpoint: str, ingest_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    faults = AwsFaults(share=0.0, after_share=0.4, seed=11)  # off while the buckets and table are made
    proxy = start_asgi(proxy_app(moto_endpoint, faults))
    run = uuid.uuid4().hex[:8]
    buckets = {name: f"{name}-{run}" for name in ("landing", "recordings", "quarantine", "audit")}
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION)
    for bucket in buckets.values():
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    extra = {"endpoint_url": proxy.url, "region_name": REGION}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps({"conn_type": "aws", "extra": extra}))
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("OCP_INGEST_LEDGER_BACKEND", "dynamodb")
    monkeypatch.setenv("OCP_INGEST_DYNAMODB_TABLE", f"ledger_{run}")
    monkeypatch.setenv("OCP_INGEST_DYNAMODB_ENDPOINT_URL", proxy.url)
    for name, bucket in buckets.items():
        monkeypatch.setenv(f"OCP_INGEST_{name.upper()}_URL", f"s3://{CONN_ID}@{bucket}")
    with open_ledger(Settings.from_env()) as ledger:
        ledger.backend.create_table()  # type: ignore[attr-defined]
    try:
        yield Aws(moto_endpoint, proxy.url, faults, buckets, f"ledger_{run}")
    finally:
        proxy.stop()


def _calls() -> list[SimCall]:
    start = datetime(2026, 11, 24, 10, tzinfo=UTC)
    return generate_calls(seed=21, count=16, window_start=start, mean_duration_s=3, max_duration_s=6)


def _push_until_acknowledged(client: httpx.Client, url: str, call: SimCall, attempts: int = 30) -> None:
    """OCP's behaviour: an unacknowledged push (5xx, a cut connection) is pushed again."""
    body = audio.wav_bytes(call.dialog_id, call.duration_ms)
    events = wire.event_body(call.events())
    for what in ("events", "audio"):
        for _ in range(attempts):
            try:
                if what == "events":
                    answer = client.post(
                        f"{url}/v1/events", content=events, headers=signing.event_headers(SECRET, events)
                    )
                else:
                    sha = hashlib.sha256(body).hexdigest()
                    headers = signing.audio_headers(SECRET, call.recording_filename, sha)
                    answer = client.put(
                        f"{url}/v1/recordings/{call.recording_filename}", content=body, headers=headers
                    )
            except httpx.TransportError:
                continue
            if answer.status_code < 500:
                assert answer.status_code == 200, (what, answer.status_code, answer.text)
                break
            assert answer.status_code in (503, 507) and "retry-after" in answer.headers, answer.text
        else:
            pytest.fail(f"{what} of {call.dialog_id} never acknowledged in {attempts} pushes")
        if not call.has_recording:
            return


def test_realtime_on_s3_and_dynamodb_survives_throttling_and_5xx(aws: Aws) -> None:
    calls = _calls()
    settings = Settings.from_env()
    layout = StorageLayout.from_settings(settings)
    aws.faults.share = 0.12
    ledger = open_ledger(settings)
    server = start_receiver(create_app(settings, secret=SECRET, ledger=ledger))
    failed_runs = 0
    try:
        with httpx.Client(timeout=60) as client:
            for call in calls:
                _push_until_acknowledged(client, server.url, call)
        for _ in range(40):
            arrivals = list_arrivals(layout, 500)
            if not arrivals:
                break
            try:
                RealtimeProcessor(settings, ledger, layout).process(arrivals)
            except Exception as exc:  # a failed run: Airflow retries the task
                assert is_outage(exc), repr(exc)
                failed_runs += 1
        else:
            pytest.fail("landing never drained")
    finally:
        server.stop()

    aws.faults.share = 0.0
    assert aws.faults.total("s3") > 0 and aws.faults.total("dynamodb") > 0, aws.faults.injected
    assert any(when == "after" for _, _, when in aws.faults.injected), aws.faults.injected
    s3 = boto3.client("s3", endpoint_url=aws.moto, region_name=REGION)
    stored = {
        obj["Key"]: obj["Size"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=aws.buckets["recordings"])
        for obj in page.get("Contents", [])
    }
    with_audio = [c for c in calls if c.has_recording]
    assert len(stored) == len(with_audio), sorted(stored)  # once each, nothing else
    for call in with_audio:
        record = ledger.get(call.dialog_id)
        assert record is not None and record.call_status is CallStatus.COMPLETED, (call.dialog_id, record)
        truth_sha, truth_size = audio.wav_digest(call.dialog_id, call.duration_ms)
        assert (record.sha256, record.size_bytes) == (truth_sha, truth_size)
        key = record.object_url.split(aws.buckets["recordings"], 1)[1].lstrip("/")
        body = s3.get_object(Bucket=aws.buckets["recordings"], Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == truth_sha
    for bucket in aws.buckets.values():  # no upload left half-done
        assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == [], bucket
    # The audit trail (Parquet on S3, published from the ledger's outbox) agrees with the ledger.
    checked = verify(ledger, settings, datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC))
    assert checked.checked == len(with_audio) and checked.findings == [], checked.findings
    ledger.close()
    print(f"faults injected {dict(aws.faults.injected)}; failed runs {failed_runs}")
