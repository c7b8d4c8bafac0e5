"""The emulator stands alone: of the project it imports only itself and `provisioning.tokenizer`,
so it runs as Azure's stand-in without Django and cannot lean on the code it is there to test.

import-linter's contract in pyproject.toml names the forbidden packages one by one; this test
reads every module of the emulator, so a package added to the project later cannot slip past
that list."""

import ast
from pathlib import Path

import pytest

import provisioning.emulator

EMULATOR_DIR = Path(provisioning.emulator.__file__).resolve().parent
REPOSITORY = EMULATOR_DIR.parent.parent
ALLOWED = ("provisioning.emulator", "provisioning.tokenizer")


def project_packages() -> set[str]:
    """The top-level names the repository itself provides (a package or a module)."""
    names = {path.parent.name for path in REPOSITORY.glob("*/__init__.py")}
    return names | {path.stem for path in REPOSITORY.glob("*.py")}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPOSITORY).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(source: str, module: str, *, is_package: bool) -> list[str]:
    """Every module a source imports, as absolute dotted names: `from a import b` counts as
    `a.b`, since b may be a module; `importlib.import_module("x")` and `__import__("x")` too."""
    package = module if is_package else module.rpartition(".")[0]
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names += [f"{base}.{alias.name}" if alias.name != "*" else base for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and (getattr(node.func, "attr", None) or getattr(node.func, "id", None))
            in {"import_module", "__import__"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.append(node.args[0].value)
    return names


def outside_imports(source: str, module: str, *, is_package: bool = False) -> list[str]:
    """The project modules a source imports that the emulator may not."""
    project = project_packages()
    return [
        name
        for name in imported_names(source, module, is_package=is_package)
        if name.split(".")[0] in project
        and not any(name == allowed or name.startswith(allowed + ".") for allowed in ALLOWED)
    ]


def emulator_modules() -> list[Path]:
    return sorted(EMULATOR_DIR.rglob("*.py"))


def test_the_emulator_imports_nothing_of_the_project_but_the_tokenizer():
    modules = emulator_modules()
    assert len(modules) > 20  # the walk found the package, subpackages included
    offending = {
        module_name(path): found
        for path in modules
        if (
            found := outside_imports(
                path.read_text(), module_name(path), is_package=path.name == "__init__.py"
            )
        )
    }
    assert offending == {}, f"the emulator imports the project: {offending}"


def test_the_walk_sees_the_imports_the_emulator_does_make():
    # Without this, a walk that finds no imports at all would pass the test above.
    textgen = EMULATOR_DIR / "textgen.py"
    assert "provisioning.tokenizer" in imported_names(
        textgen.read_text(), "provisioning.emulator.textgen", is_package=False
    )


@pytest.mark.parametrize(
    "source",
    [
        "from provisioning.models import ModelDeployment",
        "import provisioning.services",
        "from provisioning import azure",
        "from provisioning.signals import deployment_ready",  # imports nothing forbidden itself
        "from ... import catalog",  # provisioning.catalog, from provisioning/emulator/arm/
        "import chat.streaming",
        "from money import admission",
        "from base.remembered import remembered",
        "import importlib\nimportlib.import_module('portal.settings')",
        "from provisioning import *",
    ],
)
def test_an_import_of_the_project_is_caught(source):
    assert outside_imports(source, "provisioning.emulator.arm.accounts") != []


@pytest.mark.parametrize(
    "source",
    [
        "from provisioning.emulator.state import Store",
        "from provisioning.emulator import arm",
        "from provisioning import tokenizer",
        "from .resources import PROVIDER",
        "from .. import textgen",
        "import json\nfrom starlette.requests import Request",
    ],
)
def test_the_emulator_and_the_tokenizer_may_be_imported(source):
    assert outside_imports(source, "provisioning.emulator.arm.accounts") == []
