"""`metaembed services start|stop|status|env`: PostgreSQL, an MLflow server on it and a Prefect server.

All on 127.0.0.1, every file under METAEMBED_SERVICES_DIR (default .services/). Ports:
METAEMBED_PG_PORT (5433), METAEMBED_MLFLOW_PORT (5001), METAEMBED_PREFECT_PORT (4201).
`eval "$(metaembed services env)"` points this shell's runs at them (docs/scale-out.md).
"""

from __future__ import annotations

import argparse
import shlex


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["start", "stop", "status", "env"],
                        help="start (reuses what runs), stop, status, or env (export lines for a shell)")
    parser.add_argument("--dir", default=None, help="services folder (default METAEMBED_SERVICES_DIR or .services)")
    parser.add_argument("--only", nargs="+", choices=["mlflow", "prefect"], default=None,
                        help="start PostgreSQL and only these servers (default: both)")


def run(args: argparse.Namespace) -> int:
    from metaembed.services import settings, stack

    try:
        services = settings.load(args.dir)
        if args.action == "env":
            for key, value in services.client_env().items():
                print(f"export {key}={shlex.quote(value)}")
            return 0
        if args.action == "start":
            states = stack.start_all(services, tuple(args.only or ("mlflow", "prefect")))
        elif args.action == "stop":
            states = stack.stop_all(services)
        else:
            states = {name: f"{info['state']:<13} {info['url']}" for name, info in stack.status(services).items()}
    except settings.ServicesError as error:
        print(f"error: {error}")
        return 1
    for name, state in states.items():
        print(f"{name:<9} {state}")
    if args.action == "start":
        print(f"\nOptuna storage: {services.database_url('optuna')} (password from PGPASSFILE)\n"
              f"MLflow UI: {services.tracking_uri}   Prefect UI: {services.prefect_api_url.removesuffix('/api')}\n"
              f'Use them from a shell: eval "$(metaembed services env --dir {services.root})"')
    return 0
