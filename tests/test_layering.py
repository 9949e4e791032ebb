"""Each package imports only what runs where it runs.

* ``chalicelib/`` is what Lambda runs: it never imports the operator tools
  (``ops``), the one-machine stack or face engine (``local``), nor tests or
  benchmarks;
* ``local/engine/`` (the face engine) never imports ``local/stack/`` (the
  launcher that runs it);
* ``app.py`` imports neither ``ops`` nor ``local``, not even inside a
  function: it reads its names from the environment only;
* no test module imports a test module or a conftest;
* Lambda code (``app.py``, ``chalicelib/``) never scans a table: no ``.scan(``
  call, no ``scan_all`` (lists, the watchdog and the retention sweep query
  indexes; only the operator tools in ``ops/`` scan).

Imports are read with :mod:`ast` from every ``.py`` file of the project, so a
lazy import inside a function counts as much as one at the top, and so does
one made from a literal string (``importlib.import_module("ops.x")``,
``__import__("ops")``). (One from a computed name is not seen.)
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
    "app": (LAMBDA_FORBIDDEN, ()),
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
            named = _imported_by_name(child)
            if named:
                found.append(Import(named, child.lineno, inner))
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


def _imported_by_name(node):
    """The module a call such as ``importlib.import_module("ops.x")`` or
    ``__import__("ops")`` imports, when named by a literal string; else None."""
    if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)):
        return None
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return node.args[0].value if name in ("import_module", "__import__") else None


def scans(source):
    """Lines of ``source`` that scan a table: a ``.scan(`` call or any ``scan_all``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr == "scan":
            found.append(node.lineno)
        elif isinstance(node, ast.Name) and node.id == "scan_all":
            found.append(node.lineno)
        elif isinstance(node, ast.Attribute) and node.attr == "scan_all":
            found.append(node.lineno)
        elif isinstance(node, (ast.ImportFrom, ast.Import)) \
                and any(alias.name.rsplit(".", 1)[-1] == "scan_all" for alias in node.names):
            found.append(node.lineno)
        elif isinstance(node, ast.FunctionDef) and node.name == "scan_all":
            found.append(node.lineno)
    return sorted(set(found))


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


def test_lambda_code_never_imports_ops_even_lazily():
    """app.py and chalicelib read names from os.environ and their own modules:
    Lambda's zip holds no ``ops``, so an import of it there fails only on AWS."""
    lambda_files = [p for p in project_files()
                    if p[0] == "app.py" or p[0].startswith("chalicelib/")]
    assert any(p[0] == "app.py" for p in lambda_files)
    found = [f"{relative}:{imp.line} imports {imp.target}"
             for relative, path in lambda_files
             for imp in imports(path.read_text(encoding="utf-8"), module_name(relative),
                                relative.endswith("__init__.py"))
             if _within(imp.target, "ops")]
    assert found == []


def test_lambda_code_never_scans_a_table():
    found, checked = [], 0
    for relative, path in project_files():
        if relative == "app.py" or relative.startswith("chalicelib/"):
            checked += 1
            found += [f"{relative}:{line}" for line in scans(path.read_text(encoding="utf-8"))]
    assert checked > 10 and found == []


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
    ("app.py", "def name():\n    from ops.stage_config import stage_environment\n"),
    ("app.py", "def name():\n    import ops.stage_config\n"),
    ("app.py", "def name():\n    return importlib.import_module('ops.stage_config')\n"),
    ("chalicelib/settings.py", "def name():\n    return __import__('ops')\n"),
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
    ("app.py", "def name():\n    return importlib.import_module(name)\n"),
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
    assert [(i.target, i.lazy) for i in lazy] == [("a", False), ("b", True), ("c", True)]


@pytest.mark.parametrize("source,bad", [
    ("items = table.scan(FilterExpression=x)\n", True),
    ("def f(t):\n    return self._table.scan()\n", True),
    ("from chalicelib.dynamo import scan_all\n", True),
    ("from ops.scanning import scan_all as everything\n", True),
    ("for item in dynamo.scan_all(table):\n    pass\n", True),
    ("def scan_all(table):\n    pass\n", True),
    ("items = table.query(IndexName='live')\nscanner = 'scan'\n", False),
    ("from chalicelib.dynamo import query_all\n", False),
])
def test_the_checker_finds_a_scan(source, bad):
    assert bool(scans(source)) is bad
