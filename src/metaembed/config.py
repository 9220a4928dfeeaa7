"""params.yaml loading: each stage validates only its own section with a pydantic model."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Section = TypeVar("Section", bound=BaseModel)

DEFAULT_PARAMS = Path("params.yaml")


class ParamsError(ValueError):
    """A params.yaml value is missing or invalid; the message names the file and key."""


def load_params(path: str | Path = DEFAULT_PARAMS) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found (run from the project root or pass --params)")
    with path.open() as handle:
        params = yaml.safe_load(handle) or {}
    if not isinstance(params, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at the top level")
    return params


def section(params: dict, key: str, model: type[Section], source: str | Path = DEFAULT_PARAMS) -> Section:
    """Validate `params[key]` with `model`; a missing section takes the model's defaults."""
    try:
        return model.model_validate(params.get(key) or {})
    except ValidationError as error:
        problems = "; ".join(
            f"{key}.{'.'.join(str(part) for part in issue['loc'])}: {issue['msg']}" for issue in error.errors()
        )
        raise ParamsError(f"{source}: {problems}") from None


def load_section(key: str, model: type[Section], path: str | Path = DEFAULT_PARAMS) -> Section:
    return section(load_params(path), key, model, source=path)


def prepared_dir(params: dict) -> Path:
    """Where the prepare stage writes (params.yaml `prepare.out_dir`), read by every later stage."""
    return Path((params.get("prepare") or {}).get("out_dir", "data/prepared"))
