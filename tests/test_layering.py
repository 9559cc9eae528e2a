"""Each stage imports only earlier stages (see ../shared/STYLE.md, 'Layout')."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src" / "saetta"

LAYERS = {
    "errors": 0, "_typing": 0, "_version": 0, "_config": 0,
    "storage": 1,
    "dataset": 2,
    "formats": 3,
    "events": 4, "kernels": 4,
    "accumulate": 5,
    "execute": 6,
    "testbeds": 7, "usecase": 7, "history": 7,
    "output": 8, "plot": 8, "report": 8,
    "cli": 9, "usecase_cli": 9, "analyses": 9, "datagen": 9, "__main__": 9,
}  # fmt: skip


def _stage(module: str) -> str:
    return module.split(".")[1] if module.count(".") else module


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if p != SRC / "__init__.py")


def test_every_module_has_a_layer() -> None:
    for path in _modules():
        name = path.relative_to(SRC).parts[0].removesuffix(".py")
        assert name in LAYERS, f"{path} has no layer in LAYERS"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_no_upward_imports(path: Path) -> None:
    own = LAYERS[path.relative_to(SRC).parts[0].removesuffix(".py")]
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            if name.startswith("saetta.") or name == "saetta":
                if name == "saetta":
                    assert own == 9, f"{path}: only the top layer may import the package"
                    continue
                target = LAYERS[_stage(name)]
                assert target <= own, f"{path} (layer {own}) imports {name} (layer {target})"
