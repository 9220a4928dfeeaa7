"""`metaembed ui`: the MLflow UI (runs, metrics, plots, registered models, aliases) on 127.0.0.1.

Runs `mlflow server` over the project's store (params.yaml `tracking:`) until Ctrl-C. It binds the
loopback interface only; reach it from another machine through an SSH tunnel.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HOST = "127.0.0.1"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="params file (section tracking)")
    parser.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1 (default 5000)")
    parser.add_argument("--workers", type=int, default=1, help="server processes (one is plenty for one person)")


def server_command(tracking, root: str | Path = ".", port: int = 5000, workers: int = 1) -> list[str]:
    """The `mlflow server` command line for the embedded store (sqlite + local artifacts)."""
    from metaembed.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking, root)
    artifacts = (Path(root) / tracking.artifact_location).resolve()
    return [sys.executable, "-m", "mlflow", "server", "--host", HOST, "--port", str(port),
            "--workers", str(workers), "--backend-store-uri", uri,
            # Where experiments created from the UI keep artifacts; existing ones keep theirs.
            "--artifacts-destination", str(artifacts)]


def run(args: argparse.Namespace) -> int:
    import subprocess

    from metaembed.config import load_section
    from metaembed.tracking import TrackingParams, configure, resolve_tracking_uri
    from metaembed.tracking.redact import redact_uri

    tracking = load_section("tracking", TrackingParams, args.params)
    uri = resolve_tracking_uri(tracking, Path.cwd())
    if uri.startswith(("http://", "https://")):
        print(f"the tracking store is already a server: open {redact_uri(uri)}")
        return 0
    configure(tracking, Path.cwd(), writing=False)  # creates the store and experiment on a fresh clone
    print(f"MLflow UI: http://{HOST}:{args.port} over {redact_uri(uri)} (Ctrl-C stops it)", flush=True)
    try:
        return subprocess.run(server_command(tracking, Path.cwd(), args.port, args.workers), check=False).returncode
    except KeyboardInterrupt:
        return 0
