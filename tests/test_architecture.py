"""The house's rules, read from the source with ``ast`` (nothing is imported).

- The retrieval pipeline (every coursekit module but :mod:`coursekit.course`, :mod:`coursekit.cli` and
  :mod:`coursekit.explorer`) never imports the course tooling in :mod:`coursekit.course`.
- No module imports another coursekit module's ``_private`` name.

Every import counts, also one inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "coursekit"
TOOLING = "coursekit.course"
MAY_IMPORT_TOOLING = {"coursekit.cli", "coursekit.explorer"}


def modules() -> dict[str, Path]:
    """Every module of the coursekit package by its dotted name (a package by its ``__init__.py``)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path) -> list[tuple[str, str | None]]:
    """``(module, imported name or None)`` for each import in ``path``, with relative imports made absolute;
    ``from . import x`` gives ``(package, "x")`` and ``(package.x, None)``, since ``x`` may be a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            module = (node.module or "") if node.level == 0 else ".".join(p for p in (base, node.module) if p)
            for alias in node.names:
                found += [(module, alias.name), (f"{module}.{alias.name}", None)]
    return found


def is_tooling(module: str) -> bool:
    return module == TOOLING or module.startswith(TOOLING + ".")


def test_the_walk_sees_the_pipeline_and_the_tooling():
    names = modules()
    assert {"coursekit.methods", "coursekit.datasets", "coursekit.datasets.download", "coursekit.evaluation"} <= set(
        names)
    assert {"coursekit.course", "coursekit.course.grading", "coursekit.course.report"} <= set(names)
    assert "coursekit.course.notebooks" in {module for module, _ in imports("coursekit.cli", names["coursekit.cli"])}


def test_no_pipeline_module_imports_the_course_tooling():
    offenders = [f"{name} imports {module}" for name, path in modules().items()
                 if not is_tooling(name) and name not in MAY_IMPORT_TOOLING
                 for module, _ in imports(name, path) if is_tooling(module)]
    assert not offenders, "the pipeline must not depend on the course tooling: " + "; ".join(offenders)


def test_no_module_imports_a_private_name_from_another_coursekit_module():
    offenders = [f"{name} imports {attr} from {module}" for name, path in modules().items()
                 for module, attr in imports(name, path)
                 if attr and module.split(".")[0] == "coursekit" and module != name
                 and attr.startswith("_") and not attr.endswith("__")]
    assert not offenders, "a _private name belongs to its own module: " + "; ".join(offenders)
