"""The native build (mypyc, setup.py): what the compiled modules must avoid, and that a
build in place is complete.

The source checks run on every build, also pure Python, so a change that would
compile into different behaviour fails here first.  Each guards against a mypyc
behaviour that differs from CPython without any error at build time:

* class keywords are dropped (python/mypy#21938): ``msgspec.Struct`` subclasses
  would lose ``frozen=True``, ``kw_only=True``, ``gc=False``...;
* a coroutine suspended inside an ``except`` or ``finally`` block leaks its
  exception to everything else on the loop (``sys.exc_info()``, ``__context__``),
  and an ``await`` in ``finally`` can swallow the exception (mypyc/mypyc#1114);
* an ``except ... as name`` keeps the type of the first binding of that name in
  the function: a second ``except Other as name`` raises TypeError
  (mypyc/mypyc#620);
* ``**kwargs`` forwarded to a method of a compiled class arrives as a positional
  argument (mypyc/mypyc#1162).

Async generators are refused by mypyc itself; they are checked here too, for the
builds that never run it.
"""

from __future__ import annotations

import ast
import importlib
import os
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NATIVE = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["denpo"]["native-modules"]
TREES = {path: ast.parse((ROOT / path).read_text(), path) for path in NATIVE}


def _functions(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _own_nodes(fn: ast.AST) -> list[ast.AST]:
    """The nodes of a function's body, without those of functions (and lambdas) nested in it."""
    out: list[ast.AST] = []
    stack = list(ast.iter_child_nodes(fn))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        out.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return out


@pytest.mark.parametrize("path", NATIVE)
def test_no_class_keywords(path: str) -> None:
    bad = [
        f"{path}:{n.lineno} class {n.name}"
        for n in ast.walk(TREES[path])
        if isinstance(n, ast.ClassDef) and any(k.arg != "metaclass" for k in n.keywords)
    ]
    assert not bad, f"class keywords are dropped when compiled: move these to an interpreted module: {bad}"


@pytest.mark.parametrize("path", NATIVE)
def test_no_async_generators_nor_awaits_in_except_or_finally(path: str) -> None:
    bad = []
    for fn in _functions(TREES[path]):
        if not isinstance(fn, ast.AsyncFunctionDef):
            continue
        nodes = _own_nodes(fn)
        if any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in nodes):
            bad.append(f"{path}:{fn.lineno} {fn.name} is an async generator")
        for t in nodes:
            if isinstance(t, ast.Try):
                for block in [*t.handlers, *t.finalbody]:
                    for n in _own_nodes(block) + [block]:
                        if isinstance(n, (ast.Await, ast.AsyncWith, ast.AsyncFor)):
                            bad.append(f"{path}:{n.lineno} {fn.name} awaits inside except/finally")
    assert not bad, bad


@pytest.mark.parametrize("path", NATIVE)
def test_one_type_per_exception_name(path: str) -> None:
    bad = []
    for fn in _functions(TREES[path]):
        types: dict[str, set[str]] = {}
        for n in _own_nodes(fn):
            if isinstance(n, ast.ExceptHandler) and n.name:
                types.setdefault(n.name, set()).add(ast.unparse(n.type) if n.type else "")
        bad += [f"{path}:{fn.lineno} {fn.name}: {name} is {sorted(t)}" for name, t in types.items() if len(t) > 1]
    assert not bad, f"give each exception type its own name: {bad}"


def test_no_kwargs_forwarded_to_compiled_methods() -> None:
    methods = {
        f.name
        for tree in TREES.values()
        for cls in ast.walk(tree)
        if isinstance(cls, ast.ClassDef)
        for f in cls.body
        if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
    }
    bad = [
        f"{path}:{n.lineno} {ast.unparse(n.func)}"
        for path, tree in TREES.items()
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr in methods
        and any(k.arg is None for k in n.keywords)
    ]
    assert not bad, f"name the keywords instead of forwarding **kwargs: {bad}"


def _module(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


@pytest.mark.skipif(bool(os.environ.get("DENPO_PURE_PYTHON")), reason="DENPO_PURE_PYTHON is set")
@pytest.mark.skipif(not list((ROOT / "engine").glob("_native__mypyc*")), reason="no native build (pure Python)")
def test_a_build_in_place_is_complete() -> None:
    """When the native build is present, every listed module loads compiled."""
    interpreted = [p for p in NATIVE if not importlib.import_module(_module(p)).__file__.endswith((".so", ".pyd"))]
    assert not interpreted, f"not compiled (or older than their source): {interpreted}; run scripts/setup"
