"""`metaembed dashboard`: optuna-dashboard on 127.0.0.1 over the tuning study's storage.

The storage is the one params.yaml `tune:` names (the journal file <out_dir>/<study_name>.journal by
default, or tune.storage's RDB URL), opened the way `metaembed tune` opens it. Every study in that
storage is listed; a multi-objective one (tune.mode: multi) shows its Pareto front.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HOST = "127.0.0.1"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="params file (section tune)")
    parser.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080)")
    parser.add_argument("--storage", default=None, help="a journal file or RDB URL instead of tune's")


def study_storage(params: str | Path, root: str | Path = ".", storage: str | None = None):
    """(url, storage) of the tuning studies; a journal file that is not there yet is an error, not a new file."""
    from metaembed.config import load_section
    from metaembed.tuning.params import TuneParams
    from metaembed.tuning.study import open_storage

    tune = load_section("tune", TuneParams, params)
    if storage:
        tune = tune.model_copy(update={"storage": storage})
    url = tune.storage_url(str(root))
    if "://" not in url and not Path(url).is_file():
        raise FileNotFoundError(f"no Optuna study at {url}: run `metaembed tune --trials 3` first "
                                "(add `--mode multi` for a Pareto front)")
    return url, open_storage(tune, root)


def run(args: argparse.Namespace) -> int:
    from optuna_dashboard import run_server

    from metaembed.tracking.redact import redact_uri

    url, storage = study_storage(args.params, Path.cwd(), args.storage)
    print(f"optuna-dashboard: http://{HOST}:{args.port} over {redact_uri(url)} (Ctrl-C stops it)", flush=True)
    try:
        run_server(storage, host=HOST, port=args.port)
    except KeyboardInterrupt:
        pass
    return 0
