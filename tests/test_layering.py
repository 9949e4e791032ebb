"""Each package imports only what runs where it runs.

* ``chalicelib/`` is what Lambda runs: it never imports the operator tools
  (``ops``), the one-machine stack or face engine (``local``), nor tests or
  benchmarks;
* ``local/engine/`` (the face engine) never imports ``local/stack/`` (the
  launcher that runs it);
* ``app.py`` imports neither ``ops`` nor ``local`` at module level; its one
  allowed operator import is ``ops.stage_config`` inside a function (stage
  names from the dev config when the environment lacks them, as ``chalice
  local`` and the tests need);
* no test module imports a test module or a conftest.

Imports are read with :mod:`ast` from every ``.py`` file of the project, so a
lazy import inside a function counts as much as one at the top. (An import
made from a string, ``importlib.import_module(name)``, is not seen.)
"""
import ast
import dataclasses
import pathlib

import pytest

PROJECT_DIR = pathlib.Path(__file__).resolve().parents[1]
SKIPPED_DIRS = {".venv", ".git", "node_modules", "__pycache__", ".chalice"}

LAMBDA_FORBIDDEN = ("ops", "local", "tests", "bench")
#: module (or package prefix) -> what it may not import, and which lazy imports are allowed
RULES = {
    "chalicelib": (LAMBDA_FORBIDDEN, ()),
    "local.engine": (("local.stack",), ()),
    "app": (LAMBDA_FORBIDDEN, ("ops.stage_config",)),
}


@dataclasses.dataclass(frozen=True)
class Import:
    target: str     # the dotted module (or module.name) imported
    line: int
    lazy: bool      # inside a function: runs only when the function does


def _within(name, prefix):
    return name == prefix or name.startswith(prefix + ".")


def module_name(relative_path):
    """``chalicelib/students.py`` -> ``chalicelib.students``; ``x/__init__.py`` -> ``x``."""
    parts = list(pathlib.PurePosixPath(relative_path).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(source, module, is_package=False):
    """Every import in ``source`` (the code of ``module``), relative ones resolved.

    ``from a import b`` yields both ``a`` and ``a.b``, since ``b`` may be a module.
    """
    found = []
    package = module.split(".") if is_package else module.split(".")[:-1]

    def visit(node, lazy):
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend(Import(alias.name, child.lineno, inner) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package[:len(package) - child.level + 1]
                    base_name = ".".join(base + ([child.module] if child.module else []))
                else:
                    base_name = child.module
                if base_name:
                    found.append(Import(base_name, child.lineno, inner))
                found.extend(Import(f"{base_name}.{alias.name}" if base_name else alias.name,
                                    child.lineno, inner)
                             for alias in child.names if alias.name != "*")
            visit(child, inner)

    visit(ast.parse(source), False)
    return found


def violations(relative_path, source):
    """What ``relative_path`` (with code ``source``) imports against :data:`RULES`."""
    module = module_name(relative_path)
    is_package = pathlib.PurePosixPath(relative_path).name == "__init__.py"
    rules = [rule for prefix, rule in RULES.items() if _within(module, prefix)]
    found = []
    for forbidden, lazy_allowed in rules:
        for imp in imports(source, module, is_package):
            if not any(_within(imp.target, prefix) for prefix in forbidden):
                continue
            if imp.lazy and any(_within(imp.target, allowed) for allowed in lazy_allowed):
                continue
            where = "inside a function" if imp.lazy else "at module level"
            found.append(f"{relative_path}:{imp.line} imports {imp.target} {where}")
    return found


def imports_of_test_code(relative_path, source):
    """Imports of a test module (``test_*``) or of a conftest in ``source``."""
    module = module_name(relative_path)
    is_package = pathlib.PurePosixPath(relative_path).name == "__init__.py"
    return [f"{relative_path}:{imp.line} imports {imp.target}"
            for imp in imports(source, module, is_package)
            if any(part.startswith("test_") or part == "conftest"
                   for part in imp.target.split("."))]


def project_files():
    for path in sorted(PROJECT_DIR.rglob("*.py")):
        relative = path.relative_to(PROJECT_DIR)
        if not SKIPPED_DIRS.intersection(relative.parts):
            yield relative.as_posix(), path


# -- the project itself ---------------------------------------------------------------

def test_every_package_imports_only_what_runs_beside_it():
    checked, found = set(), []
    for relative, path in project_files():
        checked.add(module_name(relative))
        found += violations(relative, path.read_text(encoding="utf-8"))
    # The rules did see the code they are about.
    assert {"app", "chalicelib.students", "local.engine.face_engine"} <= checked
    assert found == []


def test_no_test_module_imports_a_test_module_or_a_conftest():
    """Shared fixtures live in conftest files and helpers in tests/fakes or
    tests/support: pytest finds the fixtures, nobody imports them by name."""
    found = []
    for relative, path in project_files():
        if relative.startswith("tests/"):
            found += imports_of_test_code(relative, path.read_text(encoding="utf-8"))
    assert found == []


def test_app_reads_stage_config_only_lazily():
    app_imports = imports((PROJECT_DIR / "app.py").read_text(encoding="utf-8"), "app")
    from_ops = [imp for imp in app_imports if _within(imp.target, "ops")]
    assert all(imp.lazy for imp in from_ops)
    assert {imp.target for imp in from_ops} <= {"ops.stage_config",
                                                 "ops.stage_config.stage_environment"}


# -- the checker (so that it can fail) --------------------------------------------------

@pytest.mark.parametrize("path,source", [
    ("chalicelib/students.py", "import ops.provision\n"),
    ("chalicelib/students.py", "from ops import provision\n"),
    ("chalicelib/students.py", "def f():\n    from local.engine import face_engine\n"),
    ("chalicelib/students.py", "try:\n    import local\nexcept ImportError:\n    pass\n"),
    ("chalicelib/students.py", "from tests.fakes import base\n"),
    ("chalicelib/__init__.py", "from .. import ops\n"),
    ("local/engine/video.py", "from local.stack.launcher import Stack\n"),
    ("local/engine/video.py", "from local import stack\n"),
    ("local/engine/video.py", "from ..stack import launcher\n"),
    ("local/engine/video.py", "class A:\n    def f(self):\n        import local.stack.bridge\n"),
    ("app.py", "from ops.stage_config import stage_environment\n"),
    ("app.py", "def name():\n    from ops.provision import Provisioner\n"),
    ("app.py", "def name():\n    from local.engine import face_engine\n"),
])
def test_the_checker_finds_a_forbidden_import(path, source):
    assert len(violations(path, source)) >= 1


@pytest.mark.parametrize("path,source", [
    ("chalicelib/students.py", "from chalicelib.dynamo import batch_put\nimport boto3\n"),
    ("chalicelib/students.py", "from . import dynamo\nfrom .schema import STUDENTS\n"),
    ("chalicelib/students.py", "import operator\nimport localstack_client\n"),
    ("local/engine/video.py", "from local.engine import tracking\nfrom . import boxes\n"),
    ("local/stack/launcher.py", "from local.engine import rekognition_server\nimport ops\n"),
    ("ops/provision.py", "from chalicelib.schema import TABLES\n"),
    ("app.py", "def name():\n    from ops.stage_config import stage_environment\n"),
])
def test_the_checker_allows_imports_within_the_rules(path, source):
    assert violations(path, source) == []


@pytest.mark.parametrize("source,bad", [
    ("from test_attendance_fakes import video_search\n", True),
    ("from conftest import REGION\n", True),
    ("from tests.engine.test_face_engine import photo\n", True),
    ("from tests.fakes.drivers import run_session\nimport pytest\n", False),
    ("from tests.support.face_set import photo\n", False),
])
def test_the_checker_finds_a_test_module_importing_another(source, bad):
    assert bool(imports_of_test_code("tests/test_sessions.py", source)) is bad


def test_relative_imports_are_resolved_against_the_package():
    assert [i.target for i in imports("from ..stack import launcher\n", "local.engine.video")] \
        == ["local.stack", "local.stack.launcher"]
    assert [i.target for i in imports("from . import video\n", "local.engine", is_package=True)] \
        == ["local.engine", "local.engine.video"]
    lazy = imports("import a\ndef f():\n    import b\nlambda: __import__('c')\n", "m")
    assert [(i.target, i.lazy) for i in lazy] == [("a", False), ("b", True)]
