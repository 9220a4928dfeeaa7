"""`metaembed index build`: encode a folder of candidates with a model and save a searchable index.

The layout (ViDoRe BEIR or QA, MMEB-eval, or plain images and .txt files) is detected and named;
an unreadable file stops the build, naming it, unless --on-bad skip (then it is counted, listed
and recorded in the manifest). A model from the registry is pinned to the version its alias
resolved to, and that version gets a tag pointing at the index.
"""

from __future__ import annotations

import argparse

from metaembed.index.sizes import INDEX_DTYPES

FIRST_STAGES = ("hnsw", "flat", "none")
_LISTED = 20  # skipped/ignored files printed one per line; the rest are in corpus.json


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True,
                        help="models:/<name>@<alias>, models:/<name>/<version>, or a saved model folder")
    parser.add_argument("--corpus", required=True, help="folder of candidates: ViDoRe, MMEB-eval, or images and .txt")
    parser.add_argument("--out", required=True, help="index folder to write (replaced atomically if it exists)")
    parser.add_argument("--dtype", choices=INDEX_DTYPES, default="bfloat16", help="storage of the vectors")
    parser.add_argument("--first-stage", choices=FIRST_STAGES, default="hnsw",
                        help="shortlist index on each candidate's first vector (none: exhaustive search only)")
    parser.add_argument("--first-stage-pool", choices=("mean", "first"), default="mean",
                        help="what each candidate puts in the first stage: the mean of its vectors (default), or "
                             "its first vector(s) (docs/index.md, 'Measured')")
    parser.add_argument("--first-stage-vectors", type=_positive, default=1,
                        help="with --first-stage-pool first: each candidate's leading vectors in the first stage")
    parser.add_argument("--batch-size", type=_positive, default=32, help="candidates encoded at a time")
    parser.add_argument("--on-bad", choices=("error", "skip"), default="error",
                        help="unreadable candidate files: stop (default) or leave them out and count them")
    parser.add_argument("--params", default="params.yaml", help="params file whose tracking: names the registry")
    parser.add_argument("--device", default="cpu", help="where the model encodes (cpu, cuda)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if args.first_stage_pool == "mean" and args.first_stage_vectors != 1:
        print("error: --first-stage-vectors needs --first-stage-pool first (a mean first stage holds one vector "
              "per candidate)")
        return 1
    from metaembed.images import ImageDecodeError
    from metaembed.index.persist import IndexFolderError
    from metaembed.model import DamagedWeightsError
    from metaembed.registry.load import load_pinned
    from metaembed.registry.store import RegistryError
    from metaembed.serving.build import build_index
    from metaembed.serving.corpus import CorpusError, read_corpus

    # What a user can fix (the corpus, the model reference, the store); anything else is a bug.
    failures = (CorpusError, RegistryError, FileNotFoundError, IndexFolderError, ImageDecodeError, DamagedWeightsError)
    try:
        corpus = read_corpus(args.corpus, args.on_bad)
        _report_corpus(corpus)
        pinned = load_pinned(args.model, device=args.device, params_path=args.params)
        print(f"model {pinned.pinned_uri} (sha256 {pinned.sha256[:12]}...)", flush=True)
        first_stage = None if args.first_stage == "none" else args.first_stage
        built = build_index(pinned, corpus, args.out, args.dtype, first_stage, args.batch_size,
                            progress=not args.no_progress, first_stage_vectors=args.first_stage_vectors,
                            first_stage_pool=args.first_stage_pool)
    except failures as error:
        print(f"error: {error}")
        return 1
    stage = args.first_stage if first_stage else "no first stage"
    print(f"saved {len(built.index)} candidates to {built.folder} ({args.dtype}, {stage}) in {built.seconds:.1f} s; "
          f"manifest sha256 {built.manifest_sha256[:12]}...")
    if built.link_tag:
        print(f"linked: {pinned.pinned_uri} has tag {built.link_tag}")
    return 0


def _report_corpus(corpus) -> None:
    print(f"{corpus.folder}: {corpus.layout} layout, {len(corpus.candidates)} candidates", flush=True)
    if corpus.skipped:
        print(f"skipped {len(corpus.skipped)} unreadable candidate(s) (--on-bad skip):")
        for skipped in corpus.skipped[:_LISTED]:
            print(f"  {skipped.item}: {skipped.reason}")
    if corpus.ignored:
        print(f"ignored {len(corpus.ignored)} file(s) that are neither images nor .txt: "
              f"{', '.join(corpus.ignored[:_LISTED])}{' ...' if len(corpus.ignored) > _LISTED else ''}")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
