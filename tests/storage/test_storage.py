"""Recording storage on local disk and S3: layout, create-only writes, checksums, SSE."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from airflow.sdk import ObjectStoragePath

from ocp_ingest.ids import InvalidIdentifier
from ocp_ingest.storage import ChecksumMismatch, ObjectExists, StorageLayout, iter_file, write_create_only

DIALOG = "0123456789ABCDEF0123456789ABCDEF"
START = datetime(2026, 11, 24, 23, 59, tzinfo=UTC)


def layout(root: str, per_lob_bucket: bool = False) -> StorageLayout:
    recordings = f"{root}/rec-{{lob}}" if per_lob_bucket else f"{root}/recordings"
    return StorageLayout(recordings, f"{root}/landing", f"{root}/quarantine", sse_kms_key_id="alias/rec")


def leftovers(root: str) -> list[str]:
    """Every file under the root (temporary and partial names included)."""
    path = ObjectStoragePath(root)
    return sorted(str(p) for p in path.rglob("*") if p.is_file()) if path.exists() else []


def test_recording_key_is_deterministic_and_segregated_by_lob(storage_root: str) -> None:
    path = layout(storage_root).recording_path(
        lob="retail", ocp_group="grp-1", dialog_id=DIALOG, call_start=START
    )
    assert str(path).endswith(f"/recordings/retail/2026/11/24/grp-1/{DIALOG}.wav")
    per_bucket = layout(storage_root, per_lob_bucket=True).recording_path(
        lob="cards", ocp_group="grp-1", dialog_id=DIALOG.lower(), call_start=START
    )
    assert str(per_bucket).endswith(f"/rec-cards/2026/11/24/grp-1/{DIALOG}.wav")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dialog_id", "../../etc/passwd"),
        ("dialog_id", "0123456789ABCDEF0123456789ABCDE/"),
        ("dialog_id", "0123456789ABCDEF0123456789ABCDEF\x00"),
        ("ocp_group", ".."),
        ("ocp_group", "grp/../../x"),
        ("ocp_group", "grp\n1"),
        ("lob", "Retail"),
        ("lob", "retail/.."),
        ("lob", ""),
    ],
)
def test_identifiers_with_path_characters_never_reach_a_key(tmp_path, field: str, value: str) -> None:
    args = {"lob": "retail", "ocp_group": "grp-1", "dialog_id": DIALOG, "call_start": START, field: value}
    with pytest.raises(InvalidIdentifier, match=field):
        layout(tmp_path.as_uri()).recording_path(**args)


def test_write_is_create_only_and_idempotent_for_identical_bytes(storage_root: str) -> None:
    dest = layout(storage_root).recording_path(
        lob="retail", ocp_group="g", dialog_id=DIALOG, call_start=START
    )
    first = write_create_only(dest, [b"RIFF", b"audio" * 1000])
    assert first.created and first.size == 5004
    assert first.sha256 == hashlib.sha256(b"RIFF" + b"audio" * 1000).hexdigest()
    again = write_create_only(dest, [b"RIFF" + b"audio" * 1000])
    assert not again.created and again.sha256 == first.sha256
    with pytest.raises(ObjectExists) as refused:
        write_create_only(dest, [b"other bytes"])
    assert refused.value.existing_sha256 == first.sha256
    assert dest.read_bytes() == b"RIFF" + b"audio" * 1000  # never overwritten
    assert leftovers(storage_root) == [str(dest)]


def test_checksum_mismatch_commits_nothing(storage_root: str) -> None:
    dest = ObjectStoragePath(storage_root) / "recordings" / "x.wav"
    with pytest.raises(ChecksumMismatch, match="does not match"):
        write_create_only(dest, [b"abc"], expected_sha256="0" * 64)
    with pytest.raises(ChecksumMismatch, match="expected 4"):
        write_create_only(dest, [b"abc"], expected_size=4)
    assert not dest.exists()
    assert leftovers(storage_root) == []


def test_a_stream_that_breaks_midway_leaves_nothing(storage_root: str) -> None:
    dest = ObjectStoragePath(storage_root) / "recordings" / "broken.wav"

    def broken() -> Iterator[bytes]:
        for _ in range(7):  # > one 5 MiB S3 part, so the multipart path is exercised too
            yield b"x" * (1024 * 1024)
        raise ConnectionResetError("peer reset mid-upload")

    with pytest.raises(ConnectionResetError):
        write_create_only(dest, broken())
    assert not dest.exists()
    assert leftovers(storage_root) == []


def test_s3_writes_ask_for_sse_kms_and_abort_failed_uploads(s3_client, s3_bucket: str) -> None:
    root = f"s3://aws_moto@{s3_bucket}"
    store = layout(root)
    dest = store.recording_path(lob="retail", ocp_group="g", dialog_id=DIALOG, call_start=START)
    landing = store.landing_path(DIALOG, "ab" * 32)
    body = b"y" * (6 * 1024 * 1024)
    write_create_only(landing, [body])
    sha = hashlib.sha256(body).hexdigest()
    with landing.open("rb") as handle:  # as the ingest stores a landed recording on S3
        stored = write_create_only(
            dest,
            iter_file(handle),
            expected_sha256=sha,
            sse_kms_key_id=store.sse_kms_key_id,
            metadata={"sha256": sha},
        )
    assert stored.created
    head = s3_client.head_object(Bucket=s3_bucket, Key=dest.path.split("/", 1)[1])
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == "alias/rec"
    assert head["Metadata"]["sha256"] == stored.sha256

    def broken() -> Iterator[bytes]:
        yield b"z" * (6 * 1024 * 1024)
        raise TimeoutError("download stalled")

    with pytest.raises(TimeoutError):
        write_create_only(ObjectStoragePath(root) / "recordings/other.wav", broken())
    assert s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_landing_and_quarantine_keys_are_apart_from_recordings(tmp_path) -> None:
    store = layout(tmp_path.as_uri())
    sha = "cd" * 32
    assert str(store.landing_path(DIALOG, sha)).endswith(f"/landing/audio/{DIALOG}.{sha[:16]}.wav")
    assert str(store.quarantine_path(DIALOG, sha, "invalid_audio")).endswith(
        f"/quarantine/invalid_audio/{DIALOG}.{sha[:16]}.bin"
    )
    with pytest.raises(InvalidIdentifier):
        store.quarantine_path(DIALOG, sha, "../escape")
