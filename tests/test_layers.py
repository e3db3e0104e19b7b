"""The layers of DESIGN.md, read from the source: a lower layer never imports a higher one.

Every ``import`` in a module counts, including those inside functions (a lazy import is still an edge).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "molmo_agent"
ENVS = ROOT / "envs" / "molmo_envs"

FORMATS = ("parsing", "actions", "geometry", "points", "prompts", "errors", "images")
HEAVY = (
    "torch",
    "torchvision",
    "transformers",
    "cv2",
    "grpc",
    "pyautogui",
    "gymnasium",
    "accelerate",
    "peft",
)


def _module_name(path: Path) -> str:
    base = ROOT / "envs" if path.is_relative_to(ENVS) else ROOT
    parts = list(path.relative_to(base).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:`` (annotations only: no import at run time)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def imports_of(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    names = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            names.add(prefix)
            names.update(f"{prefix}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return names


def _modules(folder: Path, *, skip: tuple[str, ...] = ()) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if not any(part in skip for part in p.parts))


def _hits(names: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if any(n == f or n.startswith(f + ".") for f in forbidden))


def _rule(paths: list[Path], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    found = {}
    for path in paths:
        hits = _hits(imports_of(path), forbidden)
        if hits:
            found[str(path.relative_to(ROOT))] = hits
    return found


ABOVE_FORMATS = tuple(
    f"molmo_agent.{name}"
    for name in (
        "model",
        "backends",
        "server",
        "client",
        "wire",
        "agent",
        "evaluation",
        "training",
        "cli",
        "demo",
        "bench",
        "v1",
        "annotate",
    )
)

RULES = {
    "formats import nothing heavy and nothing above them": (
        [PACKAGE / f"{name}.py" for name in FORMATS],
        (*HEAVY, *ABOVE_FORMATS, "molmo_envs"),
    ),
    "envs import no model, backends, server, client or agent": (
        _modules(ENVS),
        (
            "molmo_agent.model",
            "molmo_agent.backends",
            "molmo_agent.server",
            "molmo_agent.client",
            "molmo_agent.agent",
            "molmo_agent.training",
            "molmo_agent.evaluation",
            "torch",
            "transformers",
        ),
    ),
    "server and client import no agent executors or pyautogui": (
        [*_modules(PACKAGE / "server"), PACKAGE / "client.py", PACKAGE / "wire.py"],
        ("molmo_agent.agent", "pyautogui", "molmo_agent.evaluation", "molmo_agent.training"),
    ),
    "client imports no backends, torch or transformers": (
        [PACKAGE / "client.py", PACKAGE / "wire.py"],
        ("molmo_agent.backends", "molmo_agent.model", "torch", "transformers", "cv2", "gymnasium"),
    ),
    "backends import no server, agent, training or envs": (
        _modules(PACKAGE / "backends"),
        (
            "molmo_agent.server",
            "molmo_agent.agent",
            "molmo_agent.training",
            "molmo_agent.evaluation",
            "molmo_envs",
        ),
    ),
    "only backends and training import transformers": (
        [
            p
            for p in _modules(PACKAGE, skip=("backends", "training", "v1"))
            if p.name not in ("bench_gpu.py",) and "bench" not in p.parts
        ]
        + _modules(ENVS),
        ("transformers",),
    ),
}


@pytest.mark.parametrize("rule", list(RULES))
def test_layer_rule_holds(rule: str) -> None:
    paths, forbidden = RULES[rule]
    assert paths, rule
    assert _rule(paths, forbidden) == {}, rule


def test_the_rule_reader_sees_lazy_and_relative_imports(tmp_path) -> None:
    """The checker itself: an edge inside a function, and ``from ..x import y``, are both found."""
    module = PACKAGE / "agent" / "_probe_for_layers.py"
    module.write_text("def f():\n    from ..server import app\n    import torch\n")
    try:
        names = imports_of(module)
    finally:
        module.unlink()
    assert {"molmo_agent.server", "molmo_agent.server.app", "torch"} <= names
