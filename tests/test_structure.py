"""The package stays readable: no module over 500 lines, no function over 60 (docstring excluded)."""

import ast

from drowsy.paths import REPO_ROOT

MAX_MODULE_LINES, MAX_FUNCTION_LINES = 500, 60


def function_lengths(source: str):
    """(name, first line, lines of the body without its docstring) of every function in `source`."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            has_docstring = isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str)
            start = body[1].lineno if has_docstring and len(body) > 1 else body[0].lineno
            yield node.name, node.lineno, node.end_lineno - start + 1


def test_function_lengths_skip_the_docstring():
    source = 'def f():\n    """Doc\n    string."""\n    a = 1\n    return a\n'
    assert list(function_lengths(source)) == [("f", 1, 2)]


def test_no_module_or_function_is_too_long():
    too_long = []
    for path in sorted((REPO_ROOT / "drowsy").rglob("*.py")):
        source, name = path.read_text(), path.relative_to(REPO_ROOT)
        if len(source.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{name}: {len(source.splitlines())} lines")
        too_long += [f"{name}:{line} {function}(): {length} lines" for function, line, length
                     in function_lengths(source) if length > MAX_FUNCTION_LINES]
    assert too_long == []
