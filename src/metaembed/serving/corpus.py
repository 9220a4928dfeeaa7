"""A folder of candidates to index, in whichever layout it is:

    vidore-beir  corpus/*.parquet (corpus-id, image): one candidate per page, id = corpus-id
    vidore-qa    data/test-*.parquet (image, image_filename): one per page, id = image_filename
    mmeb-eval    <subset>/test-*.parquet: every distinct candidate (tgt_text, tgt_img_path) of a
                 subset, id = "<subset>/<row>/<position>" of its first occurrence
    plain        images (.png .jpg ...) and .txt files, anywhere below: one candidate per file,
                 id = its path relative to the folder

ViDoRe and MMEB go through `metaembed.data.readers`, so a folder indexes as the evaluation reads
it. Every image is decoded once here and every .txt read as UTF-8, so a broken file is reported
by name before any encoding starts; `on_bad="skip"` leaves such candidates out, but lists them.
Nothing is dropped unreported: skipped candidates and (plain layout) files that are neither
images nor text end up in the build's output and the index manifest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from metaembed.data.problems import Problem
from metaembed.data.readers import layout as vidore_layout
from metaembed.data.readers import scan_mmeb_eval, scan_vidore_beir, scan_vidore_qa
from metaembed.data.readers.common import ImageChecker
from metaembed.data.readers.mmeb import EVAL_PATTERN, TRAIN_PATTERNS, subsets
from metaembed.data.records import ImageRef, Side

OnBad = Literal["error", "skip"]
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"})
TEXT_SUFFIX = ".txt"
DISPLAY_CHARS = 300  # what a search result shows of a text: enough to recognise it
_SHOWN_PROBLEMS = 5


class CorpusError(ValueError):
    """The folder is not a corpus this code reads, or holds unreadable candidates."""


@dataclass(frozen=True)
class Candidate:
    id: str
    side: Side
    display: str  # what a search result shows: the text, the image's path, or both


@dataclass(frozen=True)
class Skipped:
    item: str  # file, and row where there is one
    reason: str


@dataclass
class Corpus:
    folder: Path
    layout: str
    candidates: list[Candidate]
    skipped: list[Skipped] = field(default_factory=list)  # unreadable, left out (on_bad="skip")
    ignored: list[str] = field(default_factory=list)  # plain layout: files that are not candidates


Reader = Callable[[Path], tuple[list[Candidate], list[Skipped], list[str]]]


def read_corpus(folder: str | Path, on_bad: OnBad = "error") -> Corpus:
    """The candidates of `folder`; CorpusError naming the files at fault when any is unreadable
    (unless on_bad="skip") or when there is nothing to index."""
    folder = Path(folder)
    if on_bad not in ("error", "skip"):
        raise ValueError(f"on_bad must be 'error' or 'skip', got {on_bad!r}")
    if not folder.is_dir():
        raise CorpusError(f"{folder}: no such folder; give the folder that holds the candidates")
    layout = detect_layout(folder)
    candidates, skipped, ignored = READERS[layout](folder)
    if skipped and on_bad == "error":
        shown = "; ".join(f"{s.item}: {s.reason}" for s in skipped[:_SHOWN_PROBLEMS])
        more = f" (and {len(skipped) - _SHOWN_PROBLEMS} more)" if len(skipped) > _SHOWN_PROBLEMS else ""
        raise CorpusError(f"{folder} ({layout}): {len(skipped)} unreadable candidate(s): {shown}{more}. Fix or "
                          "remove them, or pass --on-bad skip to leave them out (they are counted in the manifest)")
    if not candidates:
        raise CorpusError(f"{folder} ({layout}): no candidates to index" + (
            f" ({len(skipped)} skipped as unreadable)" if skipped else "") + (
            f"; {len(ignored)} file(s) ignored, e.g. {ignored[0]}: only images "
            f"({', '.join(sorted(IMAGE_SUFFIXES))}) and {TEXT_SUFFIX} files are candidates" if ignored else ""))
    return Corpus(folder, layout, candidates, skipped, ignored)


def detect_layout(folder: Path) -> str:
    kind = vidore_layout(folder)
    if kind in ("beir", "qa"):
        return f"vidore-{kind}"
    if kind == "colpali_train":
        raise CorpusError(f"{folder}: a ViDoRe (colpali) training folder, not a corpus; index an evaluation "
                          "set (BEIR or QA layout) or a plain folder of pages")
    if subsets(folder, (EVAL_PATTERN,)):
        return "mmeb-eval"
    if subsets(folder, TRAIN_PATTERNS):
        raise CorpusError(f"{folder}: an MMEB training folder (query/positive pairs), not a corpus; index an "
                          f"MMEB-eval folder (<subset>/{EVAL_PATTERN}) or a plain folder")
    return "plain"


# ---- layouts ---------------------------------------------------------------------------------

def _vidore_beir(folder: Path) -> tuple[list[Candidate], list[Skipped], list[str]]:
    result = scan_vidore_beir(folder, check_images="decode")
    data = result.records[0]
    candidates = [Candidate(cid, Side("", image), _page_display(f"page {cid}", image, folder))
                  for cid, image in data.corpus.items()]
    # Bad query or qrels rows do not touch the corpus; only corpus rows are candidates.
    problems = [p for p in result.problems if Path(p.file).parent.name == "corpus"]
    return candidates, [_skipped(p) for p in problems], []


def _vidore_qa(folder: Path) -> tuple[list[Candidate], list[Skipped], list[str]]:
    result = scan_vidore_qa(folder, check_images="decode")
    data = result.records[0]
    candidates = [Candidate(name, Side("", image), _page_display(name, image, folder))
                  for name, image in data.corpus.items()]
    # Every QA row carries a page; the reader says so where it kept the page and set only the
    # query aside (tests/serving/test_corpus.py pins this wording).
    problems = [p for p in result.problems if "is kept in the corpus" not in p.message]
    return candidates, [_skipped(p) for p in problems], []


def _mmeb_eval(folder: Path) -> tuple[list[Candidate], list[Skipped], list[str]]:
    candidates, skipped = [], []
    for subset, result in scan_mmeb_eval(folder, check_images="decode").items():
        seen: set[tuple[str, str | None]] = set()
        for query in result.records:
            for position, side in enumerate(query.candidates):
                key = (side.text, side.image.fingerprint() if side.image else None)
                if key in seen:
                    continue  # MMEB repeats labels and images across queries: index each once
                seen.add(key)
                candidates.append(Candidate(f"{subset}/{query.row}/{position}", side, _side_display(side, folder)))
        skipped += [_skipped(p) for p in result.problems]
    return candidates, skipped, []


def _plain(folder: Path) -> tuple[list[Candidate], list[Skipped], list[str]]:
    candidates, skipped, ignored = [], [], []
    checker = ImageChecker("decode")
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue  # hidden files and folders (.DS_Store, .git, editor swap files)
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            image = ImageRef(path=path)
            problem = checker.problem(image)
            if problem:
                skipped.append(Skipped(relative, problem))
            else:
                candidates.append(Candidate(relative, Side("", image), relative))
        elif suffix == TEXT_SUFFIX:
            text, problem = _read_text(path)
            if problem:
                skipped.append(Skipped(relative, problem))
            else:
                candidates.append(Candidate(relative, Side(text), _shorten(text)))
        else:
            ignored.append(relative)
    return candidates, skipped, ignored


READERS: dict[str, Reader] = {"vidore-beir": _vidore_beir, "vidore-qa": _vidore_qa, "mmeb-eval": _mmeb_eval,
                              "plain": _plain}


# ---- pieces ----------------------------------------------------------------------------------

def _read_text(path: Path) -> tuple[str, str | None]:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        return "", f"not valid UTF-8 (byte {error.start}): re-save the file as UTF-8"
    except OSError as error:
        return "", f"cannot read: {error.strerror or error}"
    if not text.strip():
        return "", "empty text file: nothing to encode"
    return text.strip(), None


def _skipped(problem: Problem) -> Skipped:
    where = f"{problem.file} row {problem.row}" if problem.row is not None else problem.file
    return Skipped(where, problem.message)


def _page_display(label: str, image: ImageRef, folder: Path) -> str:
    if image.path is not None:
        return f"{label} ({_relative(image.path, folder)})"
    return f"{label} (embedded image, {len(image.data or b'')} bytes)"


def _side_display(side: Side, folder: Path) -> str:
    parts = [_shorten(side.text)] if side.text.strip() else []
    if side.image is not None:
        where = _relative(side.image.path, folder) if side.image.path is not None else side.image.describe()
        parts.append(f"[image: {where}]")
    return " ".join(parts)


def _relative(path: Path, folder: Path) -> str:
    path = Path(path)
    return path.relative_to(folder).as_posix() if path.is_relative_to(folder) else str(path)


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= DISPLAY_CHARS else text[:DISPLAY_CHARS - 1] + "…"
