"""Every third-party module the code and the tests import is declared in setup.py.

A fresh machine is set up by the README's set-up command (``pip install -e ".[test]"``) on top of the
prerequisites (torch, torchvision, Detectron2), so anything else imported under ``adaanchor/``, ``projects/`` or
``tests/`` (and by ``train_net.py``) must be in ``install_requires`` or ``extras_require``; otherwise it works only
on machines that happen to have it. ``.ci/run`` checks the same in a fresh virtual environment; this test says
which import is the culprit, in seconds.

Imports are read with ``ast`` (``import x.y`` and ``from x.y import z``, at any depth; relative imports are the
project's own), and setup.py is parsed, never executed. Modules loaded with ``pytest.importorskip`` (xtcocotools,
Detectron2) are optional by design and are not ``import`` statements, so they are not required here.
Framework-free: plain asserts; pytest only supplies ``tmp_path``.
"""

import ast
import importlib.util
import re
import sys
import sysconfig
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("adaanchor", "projects", "tests", "train_net.py")

# Installed beforehand, as the README's prerequisites say (Detectron2 must be built against the installed torch).
PREREQUISITES = {"torch", "torchvision", "detectron2"}

# Import name -> the distributions (PEP 503-normalised) that provide it, where the names differ.
DISTRIBUTIONS = {
    "cv2": ("opencv-python", "opencv-python-headless", "opencv-contrib-python", "opencv-contrib-python-headless"),
    "yaml": ("pyyaml",),
    "PIL": ("pillow",),
    "sklearn": ("scikit-learn",),
    "skimage": ("scikit-image",),
    "google": ("protobuf",),
    "attr": ("attrs",),
    "dateutil": ("python-dateutil",),
}


def normalise(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def distributions_of(module: str) -> tuple:
    return DISTRIBUTIONS.get(module, (normalise(module),))


def is_stdlib(module: str) -> bool:
    names = getattr(sys, "stdlib_module_names", None)  # Python >= 3.10
    if names is not None:
        return module in names
    if module in sys.builtin_module_names:
        return True
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return False
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    origin = Path(spec.origin).resolve()
    return stdlib in origin.parents and "site-packages" not in origin.parts


def python_files(root: Path, scanned=SCANNED):
    for name in scanned:
        path = root / name
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)


# Folders whose scripts the tests import after putting them on sys.path (the demo and the tools).
SCRIPT_FOLDERS = ("projects/AdaAnchor", "projects/AdaAnchor/tools")


def local_modules(root: Path, path: Path) -> set:
    """Top-level names that an import in ``path`` may resolve to inside the repository: the repository root's
    modules and packages (pytest puts the root on sys.path, setup.cfg), the file's own folder (a script's folder
    is on sys.path when it runs; pytest's rootdir-relative imports put the test folder there) and, for the
    tests, :data:`SCRIPT_FOLDERS`."""
    names = set()
    folders = {root, path.parent}
    if "tests" in path.relative_to(root).parts:
        folders |= {root / folder for folder in SCRIPT_FOLDERS if (root / folder).is_dir()}
    for folder in folders:
        for entry in folder.iterdir():
            if entry.suffix == ".py":
                names.add(entry.stem)
            elif entry.is_dir() and (entry / "__init__.py").is_file():
                names.add(entry.name)
    return names


def third_party_imports(root: Path, scanned=SCANNED) -> dict:
    """{top-level module: [files importing it]} for the third-party imports in the scanned files."""
    found = {}
    for path in python_files(root, scanned):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        local = local_modules(root, path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in local or is_stdlib(top):
                    continue
                found.setdefault(top, []).append(str(path.relative_to(root)))
    return found


def _literal(node, assignments):
    """The value of a setup() argument: a literal, or a module-level name bound to a literal."""
    if isinstance(node, ast.Name) and node.id in assignments:
        node = assignments[node.id]
    return ast.literal_eval(node)


def declared_distributions(setup_py: Path) -> set:
    """Normalised names in setup()'s install_requires and every extras_require list, parsed, not executed."""
    tree = ast.parse(setup_py.read_text(encoding="utf-8"), filename=str(setup_py))
    assignments = {
        target.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "setup"
    ]
    assert len(calls) == 1, f"{setup_py}: expected one setup(...) call, found {len(calls)}"
    requirements = []
    for keyword in calls[0].keywords:
        if keyword.arg == "install_requires":
            requirements += list(_literal(keyword.value, assignments))
        elif keyword.arg == "extras_require":
            for extra in _literal(keyword.value, assignments).values():
                requirements += [extra] if isinstance(extra, str) else list(extra)
    names = set()
    for requirement in requirements:
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
        assert match, f"{setup_py}: cannot read the requirement {requirement!r}"
        names.add(normalise(match.group(1)))
    return names


def undeclared_imports(root: Path, scanned=SCANNED) -> dict:
    """{module: files} for third-party imports that no declared distribution (nor a prerequisite) provides."""
    declared = declared_distributions(root / "setup.py")
    return {
        module: files
        for module, files in sorted(third_party_imports(root, scanned).items())
        if module not in PREREQUISITES and not declared.intersection(distributions_of(module))
    }


def describe(undeclared: dict) -> str:
    return "\n".join(
        f"  import {module} (in {', '.join(sorted(set(files)))}): add {distributions_of(module)[0]!r} to setup.py's "
        "install_requires, or to extras_require['test'] if only the tests need it"
        for module, files in undeclared.items()
    )


def test_every_third_party_import_is_declared_in_setup_py():
    undeclared = undeclared_imports(REPO_ROOT)
    assert not undeclared, "third-party modules imported but not declared in setup.py:\n" + describe(undeclared)


def test_the_scan_sees_the_known_imports():
    # Guards the checker against scanning nothing (a moved folder, a broken walk) and passing vacuously.
    imports = third_party_imports(REPO_ROOT)
    for module in ("numpy", "pytest", "torch"):
        assert module in imports, f"the scan found no 'import {module}' in {SCANNED}: is it reading the files?"
    assert "adaanchor" not in imports and "conftest" not in imports and "os" not in imports


def _write(path: Path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_checker_catches_an_undeclared_import(tmp_path):
    _write(
        tmp_path / "setup.py",
        "from setuptools import setup\n"
        "REQUIRES = ['numpy>=1.20', 'opencv-python; python_version >= \"3.9\"']\n"
        "setup(name='x', install_requires=REQUIRES, extras_require={'test': ['pytest'], 'yaml': 'PyYAML[libyaml]'})\n",
    )
    _write(tmp_path / "adaanchor" / "__init__.py", "import os\nimport numpy as np\nfrom . import core\n")
    _write(tmp_path / "adaanchor" / "core.py", "import cv2\nimport torch\nfrom adaanchor import x\nimport yaml\n")
    _write(tmp_path / "tests" / "helper_tool.py", "from detectron2.config import get_cfg\n")
    _write(tmp_path / "tests" / "test_a.py", "import pytest\nimport helper_tool\n\ndef f():\n    import foo.bar\n")
    _write(tmp_path / "projects" / "P" / "tools" / "run.py", "from sibling import main\nfrom baz import qux\n")
    _write(tmp_path / "projects" / "P" / "tools" / "sibling.py", "import json\n")

    assert declared_distributions(tmp_path / "setup.py") == {"numpy", "opencv-python", "pytest", "pyyaml"}
    undeclared = undeclared_imports(tmp_path, scanned=("adaanchor", "projects", "tests"))
    assert undeclared == {"baz": ["projects/P/tools/run.py"], "foo": ["tests/test_a.py"]}, undeclared
    assert "import foo (in tests/test_a.py): add 'foo'" in describe(undeclared)

    # Declaring them clears the report.
    _write(
        tmp_path / "setup.py",
        "from setuptools import setup\nsetup(install_requires=['numpy', 'opencv-python', 'pyyaml', 'foo', 'Baz'],"
        " extras_require={'test': ['pytest']})\n",
    )
    assert undeclared_imports(tmp_path, scanned=("adaanchor", "projects", "tests")) == {}
