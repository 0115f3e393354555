"""Every error the code raises says how to fix it: no Lepton error is built with an empty or
missing ``fix`` (the answer's ``fix`` field, and the CLI's second line)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import lepton
from lepton import errors

SOURCE = Path(lepton.__file__).parent
ERRORS = {
    name
    for name, value in vars(errors).items()
    if inspect.isclass(value) and issubclass(value, errors.LeptonError)
} | {"ErrorDetail"}  # the API's error body, built directly for FastAPI's own errors


def _without_fix(call: ast.Call) -> bool:
    given = [k.value for k in call.keywords if k.arg == "fix"]
    if any(k.arg is None for k in call.keywords):  # **kwargs: cannot tell
        return False
    if not given:
        return len(call.args) < 2
    value = given[0]
    return isinstance(value, ast.Constant) and not value.value


def test_no_error_is_raised_without_a_fix() -> None:
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        if path.name == "errors.py":  # the classes themselves, and decoding answers
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):  # raised at once or returned to be raised
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name in ERRORS and _without_fix(node):
                found.append(f"{path.relative_to(SOURCE)}:{node.lineno} {name}")
    assert found == [], "errors raised without a fix:\n" + "\n".join(found)
    assert len(ERRORS) > 10  # the scan knows the error classes
