"""The package stays readable: no module over 500 lines, no function over 60 (docstring excluded), in
drowsy/ and benchmarks/; the subpackages are layers, and no module imports one above its own or
takes part in an import cycle (the README's Architecture section lists the layers in this order)."""

import ast
from pathlib import Path

from drowsy.paths import REPO_ROOT

MAX_MODULE_LINES, MAX_FUNCTION_LINES = 500, 60
# Bottom to top. "base" is every module at the top level of drowsy/ (errors, paths, files, config, ...);
# "notebooks" the notebooks' parameters; "cli" the command line (cli, __main__, commands/).
LAYERS = ("base", "data", "models", "viz", "infer", "monitor", "synth", "eval", "train", "notebooks", "cli")


def function_lengths(source: str):
    """(name, first line, lines of the body without its docstring) of every function in `source`."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            has_docstring = (
                isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            )
            start = body[1].lineno if has_docstring and len(body) > 1 else body[0].lineno
            yield node.name, node.lineno, node.end_lineno - start + 1


def module_name(path: Path) -> str:
    """drowsy/data/labels.py -> drowsy.data.labels; a package's __init__.py -> the package."""
    return ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__")


def layer(module: str) -> str:
    """The layer of a drowsy module (see LAYERS)."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in ("cli", "__main__", "commands"):
        return "cli"
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "base"


def drowsy_imports(source: str) -> set[str]:
    """Every drowsy module `source` imports, anywhere in it (`from drowsy import x` names drowsy.x when
    x is a module, else drowsy itself)."""
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "drowsy":
            if node.module == "drowsy":
                imported |= {f"drowsy.{alias.name}" for alias in node.names}
            else:
                imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names if alias.name.split(".")[0] == "drowsy"}
    return imported


def import_graph() -> dict[str, set[str]]:
    """drowsy module -> the drowsy modules it imports (names that are not modules map to their package)."""
    sources = {module_name(path): path.read_text() for path in (REPO_ROOT / "drowsy").rglob("*.py")}
    graph = {}
    for module, source in sources.items():
        targets = set()
        for name in drowsy_imports(source):
            while name not in sources:  # `from drowsy import CLASSES` -> drowsy
                name = name.rsplit(".", 1)[0]
            targets.add(name)
        graph[module] = targets - {module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_function_lengths_skip_the_docstring():
    source = 'def f():\n    """Doc\n    string."""\n    a = 1\n    return a\n'
    assert list(function_lengths(source)) == [("f", 1, 2)]


def test_no_module_or_function_is_too_long():
    too_long = []
    paths = [*(REPO_ROOT / "drowsy").rglob("*.py"), *(REPO_ROOT / "benchmarks").glob("*.py")]
    assert any(p.parent.name == "benchmarks" for p in paths)
    for path in sorted(paths):
        source, name = path.read_text(), path.relative_to(REPO_ROOT)
        if len(source.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{name}: {len(source.splitlines())} lines")
        too_long += [
            f"{name}:{line} {function}(): {length} lines"
            for function, line, length in function_lengths(source)
            if length > MAX_FUNCTION_LINES
        ]
    assert too_long == []


def test_layers_and_imports_are_read_as_meant():
    assert [
        layer(m)
        for m in (
            "drowsy",
            "drowsy.errors",
            "drowsy.config",
            "drowsy.data.labels",
            "drowsy.eval.metrics",
            "drowsy.notebooks",
            "drowsy.commands.train",
            "drowsy.__main__",
        )
    ] == ["base", "base", "base", "data", "eval", "notebooks", "cli", "cli"]
    source = (
        "from drowsy import CLASSES, meta\nimport drowsy.data.labels\n"
        "def f():\n    from drowsy.infer.predict import Detector\n"
    )
    assert drowsy_imports(source) == {"drowsy.CLASSES", "drowsy.meta", "drowsy.data.labels", "drowsy.infer.predict"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_every_subpackage_is_a_layer_with_a_docstring():
    packages = sorted(p.parent for p in (REPO_ROOT / "drowsy").glob("*/__init__.py"))
    assert {p.name for p in packages} == set(LAYERS) - {"base", "notebooks", "cli"} | {"commands"}
    assert all(ast.get_docstring(ast.parse((p / "__init__.py").read_text())) for p in packages)


def test_no_module_imports_a_layer_above_its_own():
    upward = [
        f"{module} ({layer(module)}) imports {target} ({layer(target)})"
        for module, targets in sorted(import_graph().items())
        for target in sorted(targets)
        if LAYERS.index(layer(target)) > LAYERS.index(layer(module))
    ]
    assert upward == []


def test_no_import_cycle():
    assert cycles(import_graph()) == []
