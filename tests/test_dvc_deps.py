"""Each DVC stage lists, as deps, exactly the project modules its command imports.

DVC reruns a stage only when a listed dep changes (DESIGN.md, "Traps others hit"): a module the
stage imports but does not list is invisible to `dvc repro`, and a module it lists but never
imports reruns it for nothing. The import closure is computed statically (`ast`) from the command
module the stage's `cmd` runs (`metaembed <words>` -> its module in `metaembed.cli.COMMANDS`),
following every import, lazy (function-level) ones included, and the `__init__` of each package
on the way. `if TYPE_CHECKING:` blocks never run and are skipped. A module that imports by a
computed name (`importlib.import_module(name)`) is taken to import every project module whose
dotted name it spells out (as config.py's table of section models does).

This test is the source of truth for the `src/` deps in dvc.yaml: when it fails it prints the
lines to add or remove; `python tests/test_dvc_deps.py` prints every stage's src/ deps.
"""

from __future__ import annotations

import ast
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from metaembed.cli import COMMANDS

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
PACKAGE = "metaembed"
# The package root is executed by every stage, but only as the namespace: it holds `__version__`
# and `metaembed.load`, whose lazy import of the registry runs when a user calls it, never in a
# stage. Following it would make every stage depend on the whole registry.
NOT_FOLLOWED = {PACKAGE}


@dataclass(frozen=True)
class Import:
    module: str
    by: str  # the importing module, or "" for the stage's command module
    line: int
    package_of: str = ""  # set when only reached as the package of this module


def module_file(module: str) -> Path | None:
    base = SRC.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _nodes(tree: ast.AST):
    """Every node, leaving out the bodies of `if TYPE_CHECKING:` (their `else` runs)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    package = module if is_package else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def imports_of(module: str) -> list[tuple[str, int]]:
    path = module_file(module)
    return imports_in(path.read_text(), module, path.name == "__init__.py")


def _names_a_module(value) -> bool:
    return (isinstance(value, str) and value.split(".")[0] == PACKAGE
            and all(part.isidentifier() for part in value.split(".")) and module_file(value) is not None)


def imports_in(source: str, module: str, is_package: bool = False) -> list[tuple[str, int]]:
    """(imported project module, line) for each import in `module`'s source, lazy ones included."""
    found, spelt, computed = [], [], False
    for node in _nodes(ast.parse(source, module)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package)
            found.append((base, node.lineno))
            # `from package import submodule` imports the submodule too.
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names
                      if module_file(f"{base}.{alias.name}")]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module" and node.args:
            if isinstance(node.args[0], ast.Constant):
                found.append((node.args[0].value, node.lineno))
            else:
                computed = True
        elif isinstance(node, ast.Constant) and _names_a_module(node.value):
            spelt.append((node.value, node.lineno))
    found += spelt if computed else []
    return [(name, line) for name, line in found if name.split(".")[0] == PACKAGE]


def closure(root: str) -> dict[str, Import]:
    """module -> how it was first reached, for every project module `root` runs."""
    seen: dict[str, Import] = {}
    queue = [Import(root, "", 0)]
    while queue:
        item = queue.pop(0)
        # Importing a.b.c runs a/__init__ and a/b/__init__ first.
        parts = item.module.split(".")
        for depth in range(1, len(parts) + 1):
            name = ".".join(parts[:depth])
            if name in seen or name in NOT_FOLLOWED or module_file(name) is None:
                continue
            seen[name] = item if depth == len(parts) else Import(name, item.by, item.line, item.module)
            queue += [Import(imported, name, line) for imported, line in imports_of(name)]
    return seen


def command_module(stage: str, cmd: str) -> str:
    words = shlex.split(cmd)
    if not words or words[0] != PACKAGE:
        raise AssertionError(f"dvc.yaml stage {stage}: cmd {cmd!r} does not start with `{PACKAGE}`; "
                             "tests/test_dvc_deps.py only knows how to follow `metaembed <command>`")
    args = [word for word in words[1:] if not word.startswith("-")]
    matches = [(command, module) for command, module, _ in COMMANDS if tuple(args[:len(command)]) == command]
    if not matches:
        raise AssertionError(f"dvc.yaml stage {stage}: `{cmd}` is no command in metaembed.cli.COMMANDS")
    return max(matches, key=lambda match: len(match[0]))[1]


def relative(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def expected_deps(files: set[str]) -> set[str]:
    """The dep lines for `files`: a folder where every module of it is imported, files otherwise."""
    deps = set()
    for file in files:
        dep, parent = file, Path(file).parent
        while parent != Path("src") / PACKAGE and _all_imported(parent, files):
            dep, parent = parent.as_posix(), parent.parent
        deps.add(dep)
    return deps


def _all_imported(folder: Path, files: set[str]) -> bool:
    return all(relative(path) in files for path in _modules_in(REPO / folder))


def _modules_in(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*.py") if "__pycache__" not in path.parts)


def covered(file: str, deps: list[str]) -> bool:
    return any(file == dep or file.startswith(dep.rstrip("/") + "/") for dep in deps)


def stage_src_deps(name: str, stage: dict) -> list[str]:
    files = {relative(module_file(module)) for module in closure(command_module(name, stage["cmd"]))}
    return sorted(expected_deps(files))


def _stages() -> dict[str, dict]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def _dep_paths(stage: dict) -> list[str]:
    return [next(iter(dep)) if isinstance(dep, dict) else dep for dep in stage.get("deps", [])]


def _origin(found: Import) -> str:
    where = f"imported by {found.by} line {found.line}" if found.by else "the stage's command module"
    return f"the package of {found.package_of} ({where})" if found.package_of else where


def problems(name: str, stage: dict) -> list[str]:
    root = command_module(name, stage["cmd"])
    reached = closure(root)
    files = {relative(module_file(module)): module for module in reached}
    deps = [dep for dep in _dep_paths(stage) if dep.startswith("src/")]
    wanted = expected_deps(set(files))
    found = []
    for file, module in sorted(files.items()):
        if not covered(file, deps):
            line = next(dep for dep in wanted if covered(file, [dep]))
            found.append(f"stage {name}: {module} ({file}, {_origin(reached[module])}) is not a dep: "
                         f"add `      - {line}` to stages.{name}.deps in dvc.yaml")
    for dep in deps:
        path = REPO / dep
        if not path.exists():
            found.append(f"stage {name}: dep {dep} does not exist: remove it from stages.{name}.deps in dvc.yaml")
            continue
        unused = [relative(p) for p in ([path] if path.is_file() else _modules_in(path)) if relative(p) not in files]
        if unused:
            instead = sorted(line for line in wanted if covered(line, [dep]))
            change = f"replace it by {instead}" if instead else "remove it"
            found.append(f"stage {name}: dep {dep} covers modules `{root}` never imports ({', '.join(unused)}): "
                         f"{change} in stages.{name}.deps in dvc.yaml")
    return found


@pytest.mark.parametrize("stage", sorted(_stages()))
def test_stage_deps_are_the_modules_its_command_imports(stage):
    found = problems(stage, _stages()[stage])
    assert not found, "\n".join(found)


def test_imports_are_found_in_functions_and_relative_forms_but_not_under_type_checking():
    source = """
import json
from typing import TYPE_CHECKING

from metaembed.config import load_params
from . import plots
from ..data import records

if TYPE_CHECKING:
    from metaembed.model import MetaEmbed
else:
    import metaembed.costs


def run():
    from metaembed.evaluation.encode import load_stores
    importlib.import_module("metaembed.scoring")
    return "metaembed.losses"  # a string, not an import: nothing imports by a computed name here
"""
    found = imports_in(source, "metaembed.evaluation.example")
    assert {name for name, _ in found} == {
        "metaembed.config", "metaembed.evaluation", "metaembed.evaluation.plots", "metaembed.data",
        "metaembed.data.records", "metaembed.costs", "metaembed.evaluation.encode", "metaembed.scoring"}
    assert dict(found)["metaembed.evaluation.encode"] == 16


def test_a_computed_import_counts_every_project_module_the_module_names():
    source = """
import importlib

SECTIONS = {"TrainParams": "metaembed.training.params", "Nothing": "metaembed.no_such_module"}


def models():
    return [importlib.import_module(name) for name in SECTIONS.values()]
"""
    assert imports_in(source, "metaembed.example") == [("metaembed.training.params", 4)]


def test_the_closure_follows_lazy_imports_and_package_inits():
    # evaluation.sweep imports metaembed.costs only inside budget_costs().
    reached = closure("metaembed.evaluation.sweep")
    assert "metaembed.costs" in reached and reached["metaembed.costs"].by == "metaembed.evaluation.sweep"
    assert reached["metaembed.evaluation"].package_of == "metaembed.evaluation.sweep"  # its __init__ runs first


def test_a_missing_or_unused_dep_is_named_with_the_line_to_change():
    stage = {"cmd": "metaembed evaluate --no-progress",
             "deps": ["data/prepared", "src/metaembed/evaluation", "src/metaembed/scoring.py"]}
    found = "\n".join(problems("evaluate", stage))
    assert "stage evaluate: metaembed.commands.evaluate (src/metaembed/commands/evaluate.py, the stage's command " \
           "module) is not a dep: add `      - src/metaembed/commands/evaluate.py` to stages.evaluate.deps" in found
    assert "dep src/metaembed/evaluation covers modules `metaembed.commands.evaluate` never imports" in found
    assert "src/metaembed/evaluation/sweep.py" in found


if __name__ == "__main__":
    for stage_name, stage_spec in _stages().items():
        print(f"{stage_name}:", *(f"      - {dep}" for dep in stage_src_deps(stage_name, stage_spec)), sep="\n")
