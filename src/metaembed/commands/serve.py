"""`metaembed serve`: the search service over one index (docs/index.md, "Service").

Binds 127.0.0.1 by default. Any other address is refused unless --allow-remote: the service has
no authentication, and anyone who reaches it can make this machine encode their queries.
"""

from __future__ import annotations

import argparse
import ipaddress

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def configure(parser: argparse.ArgumentParser) -> None:
    from metaembed.serving.limits import MAX_IMAGE_BYTES, SERVICE_MAX_K

    parser.add_argument("--index", required=True, help="index folder written by `metaembed index build`")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow a non-loopback --host (no authentication: put it behind one)")
    parser.add_argument("--max-image-bytes", type=int, default=MAX_IMAGE_BYTES,
                        help=f"largest query image accepted (default {MAX_IMAGE_BYTES})")
    parser.add_argument("--max-k", type=int, default=SERVICE_MAX_K, help="most results one request may ask for")
    parser.add_argument("--params", default="params.yaml", help="params file whose tracking: names the registry")
    parser.add_argument("--device", default="cpu", help="where the model encodes (cpu, cuda)")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def run(args: argparse.Namespace) -> int:
    if not is_loopback(args.host) and not args.allow_remote:
        print(f"error: refusing to bind {args.host}: the service has no authentication. Keep the default "
              f"{DEFAULT_HOST} (reach it through an SSH tunnel), or pass --allow-remote behind a proxy that "
              "authenticates")
        return 2
    import uvicorn

    from metaembed.index.persist import IndexFolderError
    from metaembed.model import DamagedWeightsError
    from metaembed.registry.store import RegistryError
    from metaembed.serving.app import create_app
    from metaembed.serving.searcher import ModelMismatchError

    try:
        app = create_app(args.index, args.params, max_image_bytes=args.max_image_bytes, max_k=args.max_k,
                         device=args.device)
    except (ModelMismatchError, IndexFolderError, RegistryError, FileNotFoundError, DamagedWeightsError) as error:
        print(f"error: {error}")
        return 1
    print(f"serving {args.index} on http://{args.host}:{args.port} (POST /search, GET /health, GET /budgets); "
          "Ctrl-C stops it", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
