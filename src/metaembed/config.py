"""params.yaml loading: one strict model of the whole file (`ParamsRoot`), made of each stage's section model.

Every section is required and nothing unknown is accepted, so a deleted section or a misspelt key stops
the command before any work instead of letting code defaults stand in unnoticed. Types go through
pydantic's lax mode on purpose: PyYAML reads `1e-4` (no dot) as a string, and a number written that way
must still count; non-numbers ("fast") and fractions for integers (1.5) are refused.
"""

from __future__ import annotations

import copy
import difflib
import functools
import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, get_args

import yaml
from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError, model_validator

if TYPE_CHECKING:
    from metaembed.backbones import BackboneParams
    from metaembed.data.params import PrepareParams
    from metaembed.synth.params import DataParams
    from metaembed.evaluation.params import BaselinesParams, EvaluateParams, SweepParams
    from metaembed.model_params import ModelParams
    from metaembed.orchestration.params import PipelineParams
    from metaembed.pretraining.params import PretrainParams
    from metaembed.registry.params import PromotionParams, RegistryParams
    from metaembed.serving.params import IndexParams
    from metaembed.tracking.params import TrackingParams
    from metaembed.training.params import LossParams, TrainParams
    from metaembed.tuning.params import TuneParams

Section = TypeVar("Section", bound=BaseModel)

DEFAULT_PARAMS = Path("params.yaml")

# Where each section's model lives. Imported on the first load, not at import: some sit next to torch
# or mlflow code, and `metaembed --help` must stay fast.
_MODEL_MODULES = {
    "BackboneParams": "metaembed.backbones",
    "PretrainParams": "metaembed.pretraining.params",
    "ModelParams": "metaembed.model_params",
    "LossParams": "metaembed.training.params",
    "DataParams": "metaembed.synth.params",
    "PrepareParams": "metaembed.data.params",
    "TrackingParams": "metaembed.tracking.params",
    "TrainParams": "metaembed.training.params",
    "EvaluateParams": "metaembed.evaluation.params",
    "SweepParams": "metaembed.evaluation.params",
    "IndexParams": "metaembed.serving.params",
    "BaselinesParams": "metaembed.evaluation.params",
    "RegistryParams": "metaembed.registry.params",
    "PromotionParams": "metaembed.registry.params",
    "PipelineParams": "metaembed.orchestration.params",
    "TuneParams": "metaembed.tuning.params",
}


class ParamsError(ValueError):
    """A params.yaml value is missing or invalid; the message names the file, the key and the fix."""


class ParamsRoot(BaseModel):
    """The whole params file, in the file's order; `path` is the file it was read from."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    backbone: BackboneParams
    pretrain: PretrainParams
    model: ModelParams
    loss: LossParams
    data: DataParams
    prepare: PrepareParams
    tracking: TrackingParams
    train: TrainParams
    evaluate: EvaluateParams
    sweep: SweepParams
    index: IndexParams
    baselines: BaselinesParams
    registry: RegistryParams
    promotion: PromotionParams
    pipeline: PipelineParams
    tune: TuneParams

    _path: Path = PrivateAttr(DEFAULT_PARAMS)

    @model_validator(mode="after")
    def _grad_cache_needs_fixed_vectors(self):
        if self.train.grad_cache_chunk and self.model.pooling == "tokens":
            raise ValueError("train.grad_cache_chunk needs a fixed number of vectors per input (model.pooling meta "
                             "or last); set it to null for the token-level baseline")
        return self

    @property
    def path(self) -> Path:
        return self._path

    def used(self, *sections: str, exclude: Mapping[str, set[str]] | None = None) -> dict[str, dict]:
        """The validated values of `sections` as plain data: what a run hashes, fingerprints and logs
        (overrides made after loading included). `exclude` leaves keys of a section out."""
        exclude = exclude or {}
        return {name: getattr(self, name).model_dump(mode="json", exclude=exclude.get(name)) for name in sections}

    # Output paths of one stage that later stages read. Each is written once in params.yaml, at the
    # stage that writes it; the readers derive it here, so the two can never point at different places.
    @property
    def raw_dir(self) -> Path:
        """What `data synth` / `data ensure` write (`data.out_dir`) and prepare reads."""
        return Path(self.data.out_dir)

    @property
    def prepared_dir(self) -> Path:
        """What prepare writes (`prepare.out_dir`) and every later stage reads."""
        return Path(self.prepare.out_dir)

    @property
    def model_dir(self) -> Path:
        """The trained model (`train.output_dir`) that evaluate, sweep and registration read."""
        return Path(self.train.output_dir)

    @property
    def train_report_path(self) -> Path:
        """The training's TrainReport (in `train.report_dir`): its MLflow run is the one evaluate and
        sweep log onto and registration registers."""
        return Path(self.train.report_dir) / "metrics.json"

    @property
    def budgets_path(self) -> Path:
        """The sweep's SweepBudgets (in `sweep.out_dir`) that registration stores on the version."""
        return Path(self.sweep.out_dir) / "budgets.json"

    @property
    def index_dir(self) -> Path:
        """The served index the index stage builds (in `index.out_dir`) and registration links."""
        return Path(self.index.out_dir) / "index"

    @property
    def index_latency_path(self) -> Path:
        """The index stage's IndexLatency (in `index.out_dir`) that registration stores on the version."""
        return Path(self.index.out_dir) / "latency.json"


@functools.cache
def _root_model() -> type[ParamsRoot]:
    namespace = {name: getattr(importlib.import_module(module), name) for name, module in _MODEL_MODULES.items()}
    ParamsRoot.model_rebuild(_types_namespace=namespace)
    return ParamsRoot


def section_models() -> dict[str, type[BaseModel]]:
    """Section name -> the pydantic model that validates it."""
    return {name: field.annotation for name, field in _root_model().model_fields.items()}


def read_params(path: str | Path = DEFAULT_PARAMS) -> dict:
    """The file's mapping of sections as YAML gives it, not yet validated."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found (run from the project root or pass --params)")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML ({error}); fix the file") from None
    if not isinstance(params, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at the top level")
    return params


def validate_params(params: Mapping[str, Any], source: str | Path = DEFAULT_PARAMS) -> ParamsRoot:
    """The whole mapping through `ParamsRoot`; every problem at once in one ParamsError."""
    model = _root_model()
    try:
        root = model.model_validate(params)
    except ValidationError as error:
        raise _params_error(error, source, model) from None
    root._path = Path(source)
    return root


def load_root(path: str | Path = DEFAULT_PARAMS, overrides: Mapping[str, Any] | None = None) -> ParamsRoot:
    """Read and validate the params file once (dotted `overrides` applied first, and validated with
    it); pass the root on rather than reading the file again."""
    return validate_params(apply_overrides(read_params(path), overrides or {}), path)


def load_params(path: str | Path = DEFAULT_PARAMS) -> dict:
    """The file as a plain mapping (for code that edits and rewrites it), after the whole-file check."""
    params = read_params(path)
    validate_params(params, path)
    return params


def section(params: ParamsRoot | Mapping[str, Any], key: str, model: type[Section],
            source: str | Path | None = None) -> Section:
    """`params[key]` as `model`. A missing section is an error, never the model's defaults."""
    if isinstance(params, ParamsRoot):
        source = source or params.path
        if key not in ParamsRoot.model_fields:
            raise ParamsError(f"{source}: {key}: not a section (sections: {', '.join(ParamsRoot.model_fields)})")
        value = getattr(params, key)
        if isinstance(value, model):
            return value
        raw = value.model_dump() if isinstance(value, BaseModel) else value
    else:
        source = source or DEFAULT_PARAMS
        if key not in params:
            raise ParamsError(f"{source}: {key}: {_missing_section(key)}")
        raw = params[key]
    if raw is None:
        raise ParamsError(f"{source}: {key}: {_empty_section(key)}")
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        raise _params_error(error, source, model, prefix=(key,)) from None


def load_section(key: str, model: type[Section], path: str | Path = DEFAULT_PARAMS) -> Section:
    return section(load_root(path), key, model)


# dotted overrides ---------------------------------------------------------------------------------
def parse_override(text: str) -> tuple[str, Any]:
    """'train.max_steps=4' -> ('train.max_steps', 4); the value is read as YAML."""
    key, sep, value = text.partition("=")
    if not sep or "." not in key.strip():
        raise ParamsError(f"override {text!r}: expected SECTION.KEY=VALUE, e.g. train.max_steps=4")
    return key.strip(), yaml.safe_load(value)


def apply_overrides(params: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict:
    """A deep copy of `params` with each dotted key set; loading the result validates it."""
    out = copy.deepcopy(dict(params))
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ParamsError(f"override {key}: {part} is a value, not a section")
            node = child
        node[leaf] = copy.deepcopy(value)
    return out


# messages -----------------------------------------------------------------------------------------
def _params_error(error: ValidationError, source: str | Path, model: type[BaseModel],
                  prefix: tuple[str, ...] = ()) -> ParamsError:
    issues = error.errors()
    # A partial file misses many sections at once: one line for all of them.
    missing = [issue["loc"][0] for issue in issues if _is_missing_section(issue, model)]
    problems = [_problem(issue, model, prefix) for issue in issues if not _is_missing_section(issue, model)]
    if len(missing) == 1:
        problems.insert(0, f"{missing[0]}: {_missing_section(missing[0])}")
    elif missing:
        problems.insert(0, f"{', '.join(missing)}: sections missing: add them (copy them from the project's "
                           "params.yaml); every section is required so that code defaults never stand in unnoticed")
    return ParamsError(f"{source}: " + "; ".join(problems))


def _is_missing_section(issue: dict, model: type[BaseModel]) -> bool:
    return model is ParamsRoot and issue["type"] == "missing" and len(issue["loc"]) == 1


def _problem(issue: dict, model: type[BaseModel], prefix: tuple[str, ...]) -> str:
    loc = tuple(issue["loc"])
    where = ".".join(str(part) for part in prefix + loc)
    kind = issue["type"]
    if model is ParamsRoot and len(loc) == 1:
        if kind == "extra_forbidden":
            sections = ", ".join(ParamsRoot.model_fields)
            return (f"{where}: unknown section: remove it or correct its name{_near(loc[-1], ParamsRoot)} "
                    f"(sections: {sections})")
        if issue.get("input") is None:
            return f"{where}: {_empty_section(where)}"
    if kind == "missing":
        return f"{where}: required but missing: add it"
    if kind == "extra_forbidden":
        owner = _model_at(model, loc[:-1])
        parent = [str(part) for part in (prefix + loc)[:-1] if isinstance(part, str)]
        known = f" ({parent[-1]} takes {', '.join(owner.model_fields)})" if owner and parent else ""
        return f"{where}: unknown key: remove it or correct its spelling{_near(loc[-1], owner)}{known}"
    given = issue.get("input")
    shown = "" if isinstance(given, (Mapping, list, BaseModel)) else f" (value: {given!r})"
    message = issue["msg"].removeprefix("Value error, ")
    return f"{where}: {message}{shown}" if where else f"{message}{shown}"


def _near(name: object, model: type[BaseModel] | None) -> str:
    close = difflib.get_close_matches(str(name), list(model.model_fields), n=1) if model else []
    return f" (did you mean `{close[0]}`?)" if close else ""


def _missing_section(key: str) -> str:
    return (f"section missing: add `{key}:` (copy it from the project's params.yaml); every section is "
            "required so that code defaults never stand in for it unnoticed")


def _empty_section(key: str) -> str:
    return f"section is empty: write `{key}: {{}}` to take every default, or fill it in"


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The model that holds the last key of `loc` (list indices and dict keys skipped), if any."""
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            continue
        inner = _inner_model(field.annotation)
        if inner is None:
            return None
        model = inner
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if _is_model(annotation):
        return annotation
    for arg in get_args(annotation):
        if (found := _inner_model(arg)) is not None:
            return found
    return None


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)
