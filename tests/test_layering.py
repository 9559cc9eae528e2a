"""Each stage imports only earlier stages (see ../shared/STYLE.md, 'Layout').

A module named in a string (a registry entry ``"saetta.formats.root:RootReader"``,
a preload list) is imported later all the same, so it counts as an import.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src" / "saetta"

LAYERS = {
    "errors": 0, "_typing": 0, "_version": 0, "_config": 0, "_registry": 0, "quantities": 0,
    "storage": 1,
    "formats": 2,
    "dataset": 3, "catalog": 3, "units": 3, "metadata": 3, "samples": 3,
    "events": 4, "kernels": 4, "systematics": 4,
    "accumulate": 5, "inference": 5, "shards": 5, "tables": 5,
    "execute": 6,
    "usecase": 7, "ml": 7, "fastsim": 7, "astro": 7,
    "output": 8, "plot": 8, "fit": 8,
    "cli": 9, "analyses": 9, "datagen": 9, "pythia": 9, "generation": 9, "__main__": 9,
}  # fmt: skip

#: A module named in a string: ``saetta.a.b`` or ``saetta.a.b:attribute``.
_NAMED = re.compile(r"(saetta(?:\.[A-Za-z_]\w*)+)(?::[\w.]+)?")


def _stage(module: str) -> str:
    return module.split(".")[1] if module.count(".") else module


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if p != SRC / "__init__.py")


def test_every_module_has_a_layer() -> None:
    for path in _modules():
        name = path.relative_to(SRC).parts[0].removesuffix(".py")
        assert name in LAYERS, f"{path} has no layer in LAYERS"


def _named_modules(source: str) -> list[str]:
    """The saetta modules a source imports or names in a string."""
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            named = _NAMED.fullmatch(node.value)
            if named and _stage(named.group(1)) in LAYERS:
                names.append(named.group(1))
    return [n for n in names if n == "saetta" or n.startswith("saetta.")]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_no_upward_imports(path: Path) -> None:
    own = LAYERS[path.relative_to(SRC).parts[0].removesuffix(".py")]
    for name in _named_modules(path.read_text()):
        if name == "saetta":
            assert own == 9, f"{path}: only the top layer may import the package"
            continue
        target = LAYERS[_stage(name)]
        assert target <= own, f"{path} (layer {own}) imports {name} (layer {target})"


def test_a_module_named_in_a_string_counts() -> None:
    """Positive control for the string rule: a registry entry or a preload list counts."""
    source = """
import os
from saetta.errors import SaettaError
_PRELOAD = ["saetta.execute.unit", "saetta.analyses.adl"]
_FORMATS = {"root": "saetta.formats.root:RootReader"}
LOG = "saetta: error"
FILE = "saetta.yaml"
"""
    assert _named_modules(source) == [
        "saetta.errors",
        "saetta.execute.unit",
        "saetta.analyses.adl",
        "saetta.formats.root",
    ]
