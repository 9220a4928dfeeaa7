"""MMEB-train and MMEB-eval folders: one parquet per subset, images as paths under an image root.

    train: <root>/<Subset>/{original,diverse_instruction}-*.parquet  qry, qry_image_path, pos_text,
           pos_image_path [, neg_text, neg_image_path]; image paths relative to the root
    eval:  <root>/<Subset>/test-*.parquet  qry_text, qry_img_path, tgt_text[], tgt_img_path[]; the
           positive is element 0; optional <Subset>/hard_negatives.parquet (twin_indices) from our generator
"""

from __future__ import annotations

from pathlib import Path

from metaembed.data.problems import Problem, ReadResult
from metaembed.data.readers.common import (CheckImages, ImageChecker, parquet_files, path_image, read_or_reject,
                                           row_values, table_rows, text, utf8_problem)
from metaembed.data.records import EvalQuery, Side, TrainPair
from metaembed.data.tables import INT_LIST, TEXT, TEXT_LIST
from metaembed.data.templates import IMAGE_TOKEN

TRAIN_COLUMNS = {"qry": TEXT, "qry_image_path": TEXT, "pos_text": TEXT, "pos_image_path": TEXT}
NEGATIVE_COLUMNS = {"neg_text": TEXT, "neg_image_path": TEXT}
EVAL_COLUMNS = {"qry_text": TEXT, "qry_img_path": TEXT, "tgt_text": TEXT_LIST, "tgt_img_path": TEXT_LIST}
TRAIN_PATTERNS = ("original-*.parquet", "diverse_instruction-*.parquet")
EVAL_PATTERN = "test-*.parquet"
TWINS_FILE = "hard_negatives.parquet"


def subsets(root: Path, patterns: tuple[str, ...]) -> dict[str, list[Path]]:
    """Subset name -> its parquet files, for every sub-folder that has any."""
    found = {}
    for folder in sorted(path for path in Path(root).iterdir() if path.is_dir()):
        files = [f for pattern in patterns for f in parquet_files(folder, pattern)]
        if files:
            found[folder.name] = files
    return found


def side(text_value, image_value, root: Path, checker: ImageChecker, what: str) -> tuple[Side, list[str]]:
    """A side and the problems with it (empty, missing or broken image, placeholder without image)."""
    image = path_image(image_value, root)
    value = text(text_value)
    problems = []
    if not value.strip() and image is None:
        problems.append(f"{what} is empty: no text and no image")
    if image is None and IMAGE_TOKEN in value:
        problems.append(f"{what} text has {IMAGE_TOKEN} but no image path is given")
    if image is not None:
        issue = checker.problem(image)
        if issue:
            problems.append(f"{what}: {issue}")
    return Side(value, image), problems


def scan_train_file(path: Path, subset: str, image_root: Path, checker: ImageChecker) -> ReadResult[TrainPair]:
    result: ReadResult[TrainPair] = ReadResult()
    table = read_or_reject(path, TRAIN_COLUMNS, result, optional=NEGATIVE_COLUMNS)
    if table is None:
        return result
    has_negatives = all(name in table.column_names for name in NEGATIVE_COLUMNS)
    for row, values, undecodable in table_rows(table):
        if undecodable:
            result.reject(Problem(str(path), row, utf8_problem(undecodable), row_values(values)))
            continue
        query, bad = side(values["qry"], values["qry_image_path"], image_root, checker, "query")
        positive, bad_pos = side(values["pos_text"], values["pos_image_path"], image_root, checker, "positive")
        negative, bad_neg = None, []
        if has_negatives and (text(values["neg_text"]).strip() or path_image(values["neg_image_path"], image_root)):
            negative, bad_neg = side(values["neg_text"], values["neg_image_path"], image_root, checker, "negative")
        problems = bad + bad_pos + bad_neg
        if problems:
            result.reject(Problem(str(path), row, "; ".join(problems), row_values(values)))
        else:
            result.keep(str(path))
            result.records.append(TrainPair(subset, row, query, positive, negative))
    return result


def scan_mmeb_train(root: str | Path, image_root: str | Path | None = None,
                    check_images: CheckImages = "exists") -> dict[str, ReadResult[TrainPair]]:
    """Every subset of an MMEB-train folder; image paths resolve against `image_root` (default `root`)."""
    root = Path(root)
    image_root = Path(image_root) if image_root is not None else root
    checker = ImageChecker(check_images)
    results = {}
    for subset, files in subsets(root, TRAIN_PATTERNS).items():
        merged: ReadResult[TrainPair] = ReadResult()
        for path in files:
            merged.merge(scan_train_file(path, subset, image_root, checker))
        results[subset] = merged
    return results


def scan_eval_file(path: Path, subset: str, image_root: Path, checker: ImageChecker) -> ReadResult[EvalQuery]:
    result: ReadResult[EvalQuery] = ReadResult()
    table = read_or_reject(path, EVAL_COLUMNS, result)
    if table is None:
        return result
    twins = _twins(path.parent / TWINS_FILE, table.num_rows, result)
    for row, values, undecodable in table_rows(table):
        if undecodable:
            result.reject(Problem(str(path), row, utf8_problem(undecodable), row_values(values)))
            continue
        query, problems = side(values["qry_text"], values["qry_img_path"], image_root, checker, "query")
        candidates = _candidates(values, image_root, checker, problems)
        if twins and not all(0 < index < len(candidates) for index in twins[row]):
            problems.append(f"{TWINS_FILE} row {row}: twin indices {list(twins[row])} must point at candidates "
                            f"1..{len(candidates) - 1} (0 is the positive)")
        if problems:
            result.reject(Problem(str(path), row, "; ".join(problems), row_values(values)))
            continue
        result.keep(str(path))
        result.records.append(EvalQuery(subset, row, query, tuple(candidates), twins[row] if twins else None))
    return result


def _candidates(values: dict, image_root: Path, checker: ImageChecker, problems: list[str]) -> list[Side]:
    texts, images = values["tgt_text"] or [], values["tgt_img_path"] or []
    if len(texts) != len(images):
        problems.append(f"tgt_text has {len(texts)} candidates but tgt_img_path has {len(images)}")
        return []
    if len(texts) < 2:
        problems.append(f"needs at least 2 candidates (the positive first), got {len(texts)}")
    candidates = []
    for index, (value, image) in enumerate(zip(texts, images)):
        candidate, bad = side(value, image, image_root, checker, f"candidate {index}")
        problems.extend(bad)
        candidates.append(candidate)
    return candidates


def _twins(path: Path, rows: int, result: ReadResult) -> list[tuple[int, ...]] | None:
    if not path.is_file():
        return None
    table = read_or_reject(path, {"twin_indices": INT_LIST}, result, annotation=True)
    if table is None:
        return None
    if table.num_rows != rows:
        result.reject_file(str(path), f"has {table.num_rows} rows, the subset has {rows}", table.num_rows)
        return None
    for _ in range(rows):  # each row is one query's twin list, used with that query
        result.keep(str(path))
    return [tuple(value or ()) for value in table.column("twin_indices").to_pylist()]


def scan_mmeb_eval(root: str | Path, image_root: str | Path | None = None,
                   check_images: CheckImages = "exists") -> dict[str, ReadResult[EvalQuery]]:
    """Every subset of an MMEB-eval folder; image paths resolve against `image_root` (default `root`)."""
    root = Path(root)
    image_root = Path(image_root) if image_root is not None else root
    checker = ImageChecker(check_images)
    results = {}
    for subset, files in subsets(root, (EVAL_PATTERN,)).items():
        merged: ReadResult[EvalQuery] = ReadResult()
        for path in files:
            merged.merge(scan_eval_file(path, subset, image_root, checker))
        results[subset] = merged
    return results
