"""The layer order of ``docs/architecture.md``, enforced on the code's own imports.

Every module under ``src/napari_higt`` is parsed (not a sample): an import of
``napari_higt.<unit>`` from another unit must point to a unit *below* it in ``LAYERS``, and no
module outside ``ui/`` (and the ``view`` command, whose job is to start the viewer) may import
Qt, napari, vispy or magicgui, at module level or inside a function. A second check imports
every core module in a fresh interpreter and looks at ``sys.modules``. Both checks are run on
a deliberately bad temporary tree as well, to show they fail on a violation.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "napari_higt"

#: Bottom to top; a unit may import only units listed before it (and itself).
LAYERS = (
    "errors", "io", "levels", "labels", "devices", "datasets",
    "slide", "graph", "models", "features", "explain", "inference", "training", "export",
    "cohort", "demo", "ui", "commands", "cli",
)
GUI_ROOTS = ("qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "napari", "vispy", "magicgui",
             "superqt")
#: Modules outside ui/ allowed to import the GUI: the command that opens the viewer.
GUI_EXEMPT = ("commands/view.py",)


def unit_of(path: Path, root: Path) -> str | None:
    """The layer unit of a source file: its first path part under the package root."""
    rel = path.relative_to(root)
    if rel.parts == ("__init__.py",):
        return None  # the package face re-exports; it sits above everything
    return rel.parts[0].removesuffix(".py")


def imported_names(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every import in a file, including those inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append((node.lineno, node.module))
            # ``from napari_higt import slide`` names the unit in the alias
            if node.module == "napari_higt":
                names += [(node.lineno, f"napari_higt.{a.name}") for a in node.names
                          if not a.name.startswith("__")]
    return names


def layer_violations(root: Path, layers: tuple[str, ...] = LAYERS) -> list[str]:
    """Imports that point sideways or upwards in ``layers``, one line each."""
    rank = {name: i for i, name in enumerate(layers)}
    bad = []
    for path in sorted(root.rglob("*.py")):
        unit = unit_of(path, root)
        if unit is None:
            continue
        if unit not in rank:
            bad.append(f"{path.relative_to(root)}: unit {unit!r} is not in the layer order")
            continue
        for line, name in imported_names(path):
            parts = name.split(".")
            if parts[0] != "napari_higt" or len(parts) < 2 or parts[1].startswith("__"):
                continue
            target = parts[1]
            if target == unit:
                continue
            if target not in rank or rank[target] > rank[unit]:
                bad.append(f"{path.relative_to(root)}:{line}: {unit} imports {name} "
                           f"(above it in the layer order)")
            elif rank[target] == rank[unit]:
                bad.append(f"{path.relative_to(root)}:{line}: {unit} imports {name} "
                           f"(same layer)")
    return bad


def gui_violations(root: Path) -> list[str]:
    """Imports of Qt/napari/vispy/magicgui outside ``ui/`` (static, every import)."""
    bad = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("ui/") or rel in GUI_EXEMPT:
            continue
        for line, name in imported_names(path):
            if name.split(".")[0] in GUI_ROOTS:
                bad.append(f"{rel}:{line}: imports {name}")
    return bad


def core_modules(root: Path, package: str = "napari_higt") -> list[str]:
    mods = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] == "ui":
            continue
        parts = [package, *rel.with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods.append(".".join(parts))
    return mods


def gui_loaded_after_import(modules: list[str], sys_path: str | None = None) -> list[str]:
    """GUI modules present in ``sys.modules`` after importing ``modules`` in a new process."""
    code = textwrap.dedent(f"""
        import importlib, sys
        {'sys.path.insert(0, %r)' % sys_path if sys_path else ''}
        for m in {modules!r}:
            importlib.import_module(m)
        roots = {GUI_ROOTS!r}
        print("\\n".join(sorted(m for m in sys.modules if m.split(".")[0] in roots)))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return [line for line in out.stdout.splitlines() if line]


def test_every_unit_is_in_the_layer_order_and_imports_only_downwards():
    assert layer_violations(SRC) == []


def test_no_gui_import_outside_ui():
    assert gui_violations(SRC) == []


def test_importing_every_core_module_loads_no_gui():
    modules = [m for m in core_modules(SRC) if not m.endswith("commands.view")]
    assert len(modules) > 40  # the whole core, not a sample
    assert gui_loaded_after_import(modules) == []


@pytest.fixture
def bad_tree(tmp_path):
    """A copy of the package's layout with two deliberate violations in a temporary module."""
    root = tmp_path / "napari_higt"
    for sub in ("slide", "ui"):
        (root / sub).mkdir(parents=True)
        (root / sub / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "ui" / "layers.py").write_text("X = 1\n")
    (root / "slide" / "bad.py").write_text(
        "def f():\n    from napari_higt.ui.layers import X\n    import qtpy\n    return X\n")
    return root


def test_checks_catch_a_deliberate_violation(bad_tree):
    layers = layer_violations(bad_tree)
    assert any("slide/bad.py:2: slide imports napari_higt.ui.layers" in b for b in layers)
    assert gui_violations(bad_tree) == ["slide/bad.py:3: imports qtpy"]


def test_runtime_check_catches_a_gui_import(tmp_path):
    pkg = tmp_path / "badpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "core.py").write_text("import qtpy.QtCore\n")
    loaded = gui_loaded_after_import(["badpkg.core"], sys_path=str(tmp_path))
    assert "qtpy" in loaded
