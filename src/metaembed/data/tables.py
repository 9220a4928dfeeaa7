"""Parquet files written the same way every time, and read back with clear errors.

Byte-identical output needs fixed settings: no pandas index metadata, one row group, a fixed
codec, and schema metadata built from sorted JSON. Image columns carry the `datasets` feature
description, so `datasets.load_dataset` on a generated folder decodes them as images, as it does
for the real ViDoRe sets.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


class TableError(ValueError):
    """A parquet file is unreadable or lacks columns; the message names the file."""

    def __init__(self, path: Path, reason: str, rows: int | None) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason
        self.rows = rows  # rows the file holds, None where even its footer is unreadable


def hf_features(schema: pa.Schema, image_columns: tuple[str, ...] = ()) -> dict[str, Any]:
    features: dict[str, Any] = {}
    for name, kind in zip(schema.names, schema.types):
        if name in image_columns:
            features[name] = {"_type": "Image"}
        elif pa.types.is_list(kind):
            features[name] = {"feature": {"dtype": str(kind.value_type), "_type": "Value"}, "_type": "List"}
        else:
            features[name] = {"dtype": {"large_string": "string"}.get(str(kind), str(kind)), "_type": "Value"}
    return features


def write_table(table: pa.Table, path: str | Path, image_columns: tuple[str, ...] = ()) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {"info": {"features": hf_features(table.schema, image_columns)}}
    table = table.replace_schema_metadata({"huggingface": json.dumps(info, sort_keys=True)})
    pq.write_table(table, path, compression="snappy", row_group_size=max(len(table), 1), use_dictionary=False,
                   write_statistics=False, store_schema=True)
    return path


@dataclass(frozen=True)
class Kind:
    """What a column may hold, by Arrow type. A wrong type is a wrong export, the same in every
    row, so it is reported once for the file rather than guessed at (a list of texts read as one
    text would become "['a', 'b']" without a word)."""

    name: str
    accepts: Callable[[pa.DataType], bool]


def _text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)


def _binary(kind: pa.DataType) -> bool:
    return pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_binary_view(kind)


def _or_null(accepts: Callable[[pa.DataType], bool]) -> Callable[[pa.DataType], bool]:
    return lambda kind: pa.types.is_null(kind) or accepts(kind)  # an all-null column has the null type


def _list_of(accepts: Callable[[pa.DataType], bool]) -> Callable[[pa.DataType], bool]:
    def check(kind: pa.DataType) -> bool:
        listed = pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_list_view(kind)
        return listed and _or_null(accepts)(kind.value_type)
    return _or_null(check)


def _image(kind: pa.DataType) -> bool:
    """A `datasets` Image cell ({bytes, path}), raw bytes, or a path."""
    if not pa.types.is_struct(kind):
        return pa.types.is_null(kind) or _text(kind) or _binary(kind)
    fields = {field.name: field.type for field in kind}
    return (("bytes" in fields or "path" in fields) and _or_null(_binary)(fields.get("bytes", pa.null()))
            and _or_null(_text)(fields.get("path", pa.null())))


TEXT = Kind("text (a string column)", _or_null(_text))
TEXT_LIST = Kind("a list of texts", _list_of(_text))
INT_LIST = Kind("a list of integers", _list_of(pa.types.is_integer))
ID = Kind("an id (integer or string)", lambda kind: pa.types.is_integer(kind) or _text(kind))
NUMBER = Kind("a number (integer or float)", lambda kind: pa.types.is_integer(kind) or pa.types.is_floating(kind))
IMAGE = Kind("an image (struct<bytes, path>, bytes, or a path string)", _image)


def read_table(path: str | Path, required: tuple[str, ...] | Mapping[str, Kind] = (),
               optional: Mapping[str, Kind] | None = None) -> pa.Table:
    """Read a parquet file; a missing column or one of the wrong type stops with the file, the
    column and what was expected. `required` as a mapping also checks each column's kind, and
    `optional` checks the kind of the columns that are present."""
    path = Path(path)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as error:
        raise TableError(path, f"cannot read parquet: {error}", _footer_rows(path)) from None
    missing = [name for name in required if name not in table.column_names]
    if missing:
        raise TableError(path, f"missing column(s) {missing}; found {table.column_names}. "
                               f"Is this the right kind of file for this reader?", table.num_rows)
    kinds = {**(optional or {}), **(required if isinstance(required, Mapping) else {})}
    wrong = [f"{name!r} is {table.schema.field(name).type}, expected {kind.name}" for name, kind in kinds.items()
             if name in table.column_names and not kind.accepts(table.schema.field(name).type)]
    if wrong:
        raise TableError(path, f"wrong column type(s): {'; '.join(wrong)}", table.num_rows)
    return table


def _footer_rows(path: Path) -> int | None:
    """The row count a broken file declares: its footer may survive damage to its data pages."""
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (OSError, pa.ArrowException):
        return None
