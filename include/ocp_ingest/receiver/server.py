"""Running the receiver: ``ocp-ingest receiver`` (uvicorn, structured JSON logs)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from ocp_ingest.config import Settings


class JsonFormatter(logging.Formatter):
    """One JSON object per log line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def serve(host: str | None = None, port: int | None = None) -> None:
    import uvicorn

    from ocp_ingest.receiver.app import create_app

    settings = Settings.from_env()
    configure_logging()
    app = create_app(settings)
    uvicorn.run(
        app,
        host=host or settings.receiver_host,
        port=port or settings.receiver_port,
        log_config=None,  # keep our JSON formatter
        access_log=False,
        timeout_keep_alive=30,
    )


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("receiver", help="run the receiver (ingress for OCP pushes)")
    parser.add_argument("--host", default=None, help="bind address (default OCP_INGEST_RECEIVER_HOST)")
    parser.add_argument("--port", type=int, default=None, help="port (default OCP_INGEST_RECEIVER_PORT)")
    parser.set_defaults(func=lambda args: serve(args.host, args.port) or 0)
