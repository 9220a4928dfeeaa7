"""`metaembed search`: one query (text and/or image) against a built index, at a budget.

Loads the index and the model its manifest names (refusing when the model's files changed since
the build), encodes the query at the budget's r_q and prints rank, score, id and what each
result shows.
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("query", nargs="?", default=None, help="query text (optional with --image)")
    parser.add_argument("--index", required=True, help="index folder written by `metaembed index build`")
    parser.add_argument("--budget", default=None, help="RQxRC, e.g. 4x8 (default: every vector of both sides)")
    parser.add_argument("--k", type=int, default=10, help="results to show")
    parser.add_argument("--first-stage-k", type=int, default=None,
                        help="shortlist this many candidates by the first vector, then rerank (default: exhaustive)")
    parser.add_argument("--image", default=None, help="query image file")
    parser.add_argument("--params", default="params.yaml", help="params file whose tracking: names the registry")
    parser.add_argument("--device", default="cpu", help="where the model encodes (cpu, cuda)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


def run(args: argparse.Namespace) -> int:
    import json

    from metaembed.images import ImageDecodeError
    from metaembed.index.persist import IndexFolderError
    from metaembed.model import DamagedWeightsError
    from metaembed.registry.store import RegistryError
    from metaembed.serving.budget import BudgetError, format_budget, parse_budget
    from metaembed.serving.searcher import ModelMismatchError, QueryError, Searcher

    try:
        # Input errors first: no model is loaded for a query that cannot run.
        budget = parse_budget(args.budget) if args.budget is not None else None
        if not (args.query or "").strip() and args.image is None:
            raise QueryError("empty query: give the query text, --image, or both")
        searcher = Searcher.open(args.index, params_path=args.params, device=args.device)
        result = searcher.search(args.query, args.image, budget, args.k, args.first_stage_k)
    except (BudgetError, QueryError, ImageDecodeError) as error:
        print(f"error: {error}")
        return 2
    except (ModelMismatchError, IndexFolderError, RegistryError, FileNotFoundError, DamagedWeightsError) as error:
        print(f"error: {error}")
        return 1
    if args.json:
        print(json.dumps({"budget": list(result.budget), "results": [vars(hit) for hit in result.hits],
                          "timing_ms": {"encode": result.encode_ms, "search": result.search_ms}}, indent=1))
        return 0
    mode = "exhaustive" if result.first_stage_k is None else f"first stage k'={result.first_stage_k}"
    print(f"{searcher.folder}: {len(searcher.index)} candidates, model {searcher.pinned.pinned_uri}, "
          f"budget {format_budget(result.budget)}, {mode}")
    width = max((len(hit.id) for hit in result.hits), default=2)
    print(f"{'rank':>4}  {'score':>9}  {'id':<{width}}  display")
    for hit in result.hits:
        print(f"{hit.rank:>4}  {hit.score:>9.4f}  {hit.id:<{width}}  {hit.display}")
    print(f"encode {result.encode_ms:.1f} ms, search {result.search_ms:.1f} ms")
    return 0
