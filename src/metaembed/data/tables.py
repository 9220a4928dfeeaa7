"""Parquet files written the same way every time, and read back with clear errors.

Byte-identical output needs fixed settings: no pandas index metadata, one row group, a fixed
codec, and schema metadata built from sorted JSON. Image columns carry the `datasets` feature
description, so `datasets.load_dataset` on a generated folder decodes them as images, as it does
for the real ViDoRe sets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


class TableError(ValueError):
    """A parquet file is unreadable or lacks columns; the message names the file."""


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


def read_table(path: str | Path, required: tuple[str, ...] = ()) -> pa.Table:
    """Read a parquet file; a missing column stops with the file, the missing and the present names."""
    path = Path(path)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as error:
        raise TableError(f"{path}: cannot read parquet: {error}") from None
    missing = [name for name in required if name not in table.column_names]
    if missing:
        raise TableError(f"{path}: missing column(s) {missing}; found {table.column_names}. "
                         f"Is this the right kind of file for this reader?")
    return table
