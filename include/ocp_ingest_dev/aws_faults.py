"""A fault-injecting proxy in front of an S3/DynamoDB endpoint (moto's server): AWS on a bad day.

Every request is forwarded to the endpoint, except that a seeded share of them is answered with the errors
AWS documents for load and internal faults instead:

- S3: ``503 SlowDown`` and ``500 InternalError``;
- DynamoDB (requests with ``X-Amz-Target``): ``400 ProvisionedThroughputExceededException``,
  ``400 ThrottlingException`` and ``500 InternalServerError``.

A fault hits either *before* the request reaches the endpoint (nothing happened) or, for a share of them,
*after* it (the write was applied, but the client sees the error and retries it): the case that tests
whether retries are idempotent. Counts by service, code and timing are kept for the test to assert on.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

#: Hop-by-hop and length/encoding headers that must not be relayed as they are.
_DROP = {"host", "content-length", "transfer-encoding", "connection", "content-encoding", "keep-alive"}

_S3_ERRORS = [(503, "SlowDown", "Please reduce your request rate."), (500, "InternalError", "Try again.")]
_DYNAMODB_ERRORS = [
    (400, "ProvisionedThroughputExceededException", "The level of configured provisioned throughput ..."),
    (400, "ThrottlingException", "Rate of requests exceeds the allowed throughput."),
    (500, "InternalServerError", "Internal server error"),
]


@dataclass
class AwsFaults:
    """What the proxy injects: ``share`` of requests fail; ``after_share`` of those after being applied."""

    share: float = 0.1
    after_share: float = 0.3
    seed: int = 1
    #: Only S3 or only DynamoDB ("s3", "dynamodb"); None: both.
    service: str | None = None
    injected: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    forwarded: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def roll(self, service: str) -> tuple[tuple[int, str, str], bool] | None:
        """The error to answer and whether it hits after the request was applied, or None."""
        with self._lock:
            if self.service not in (None, service) or self._rng.random() >= self.share:
                return None
            errors = _DYNAMODB_ERRORS if service == "dynamodb" else _S3_ERRORS
            return self._rng.choice(errors), self._rng.random() < self.after_share

    def total(self, service: str | None = None) -> int:
        return sum(n for (svc, _, _), n in self.injected.items() if service in (None, svc))


def _error_response(service: str, error: tuple[int, str, str], head: bool) -> Response:
    status, code, message = error
    if service == "dynamodb":
        body = f'{{"__type": "com.amazonaws.dynamodb.v20120810#{code}", "message": "{message}"}}'
        return Response(body, status, media_type="application/x-amz-json-1.0")
    xml = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    return Response(b"" if head else xml, status, media_type="application/xml")


def proxy_app(upstream: str, faults: AwsFaults) -> Starlette:
    """The proxy as an ASGI app (serve it with ``serve_in_thread``/``start_asgi``)."""
    client = httpx.AsyncClient(base_url=upstream, timeout=60.0)

    async def forward(request: Request) -> Response:
        service = "dynamodb" if "x-amz-target" in request.headers else "s3"
        body = await request.body()
        fault = faults.roll(service)
        if fault is not None and not fault[1]:
            faults.injected[(service, fault[0][1], "before")] += 1
            return _error_response(service, fault[0], request.method == "HEAD")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP}
        headers["host"] = request.headers.get("host", "")
        url = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        answer = await client.request(request.method, url, content=body, headers=headers)
        faults.forwarded[service] += 1
        if fault is not None:
            faults.injected[(service, fault[0][1], "after")] += 1
            return _error_response(service, fault[0], request.method == "HEAD")
        relay = {k: v for k, v in answer.headers.items() if k.lower() not in _DROP}
        if request.method == "HEAD" and "content-length" in answer.headers:
            relay["content-length"] = answer.headers["content-length"]  # the object's size, no body
        return Response(answer.content, answer.status_code, headers=relay)

    methods = ["GET", "PUT", "POST", "DELETE", "HEAD"]
    routes: list[Any] = [Route("/{path:path}", forward, methods=methods)]
    return Starlette(routes=routes)  # the client lives as long as the proxy (a test's lifetime)
