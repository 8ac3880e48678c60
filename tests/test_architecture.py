"""Rule 2 of docs/architecture.md, the part import-linter cannot see: adapters change domain rows
only through services.

Every ORM write in an adapter module (``.save()``, ``.delete()``, and ``create``/``update``/...
on a manager or queryset) must be one of the named exceptions below: each adapter's own log rows
and the configuration written through ``worklist.configuration``. A new write in a view, a
serializer, an SCP or a command fails here with the place named; move it into a service.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: The adapter modules: UI, API, protocol listeners and senders, admin, management commands.
ADAPTERS = sorted(
    {
        *ROOT.glob("web/**/*.py"),
        *ROOT.glob("api/**/*.py"),
        *ROOT.glob("dicomweb/**/*.py"),
        *ROOT.glob("ris/hl7/**/*.py"),
        *ROOT.glob("ris/management/**/*.py"),
        *ROOT.glob("worklist/mwl/**/*.py"),
        *ROOT.glob("worklist/management/**/*.py"),
        *ROOT.glob("*/admin.py"),
        *ROOT.glob("*/*/admin.py"),
        ROOT / "mpps/scp.py",
        ROOT / "mpps/forwarding/scp.py",
        ROOT / "ris/dicom_server.py",
        ROOT / "ris/views.py",
    }
)

ALWAYS_WRITES = {"save", "delete"}
QUERYSET_WRITES = {"create", "update", "bulk_create", "bulk_update", "get_or_create",
                   "update_or_create", "delete"}
QUERYSET_MARKERS = {"objects", "filter", "exclude", "all", "select_for_update", "get_queryset"}

#: (module, function) -> why this write is not a domain change made behind the services' back.
ALLOWED = {
    ("ris/hl7/handler.py", "_log_message"): "the HL7 adapter's own message log",
    ("ris/hl7/handler.py", "reprocess"): "the HL7 adapter's own message log (outcome of a rerun)",
    ("worklist/admin.py", "save_model"): "configuration, through worklist.configuration",
    ("worklist/admin.py", "save_formset"): "configuration, through worklist.configuration",
}


def _chain_names(node: ast.AST) -> set[str]:
    """Attribute and call names along a receiver chain (``Model.objects.filter(...)``)."""
    names: set[str] = set()
    while True:
        if isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
            node = node.value
        elif isinstance(node, ast.Subscript):
            node = node.value
        else:
            return names


def orm_writes(path: Path) -> list[tuple[str, int, str]]:
    """(enclosing function, line, method) of every ORM write call in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[str, int, str]] = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = function
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = child.name
            if isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute):
                method = child.func.attr
                receiver = _chain_names(child.func.value)
                if method in ALWAYS_WRITES or (
                    method in QUERYSET_WRITES and receiver & QUERYSET_MARKERS
                ):
                    found.append((name, child.lineno, method))
            visit(child, name)

    visit(tree, "<module>")
    return found


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("path", ADAPTERS, ids=_relative)
def test_adapter_module_writes_domain_rows_only_through_services(path):
    writes = [
        f"{_relative(path)}:{line} {function}() calls .{method}()"
        for function, line, method in orm_writes(path)
        if (_relative(path), function) not in ALLOWED
    ]
    assert not writes, "adapters write through services (docs/architecture.md, rule 2):\n" + (
        "\n".join(writes)
    )


def test_every_named_exception_is_still_a_write():
    # An exception that no longer matches anything is removed rather than kept as a loophole.
    for module, function in ALLOWED:
        assert any(name == function for name, _, _ in orm_writes(ROOT / module)), (module, function)


def test_the_check_sees_a_write_planted_in_a_view(tmp_path):
    planted = tmp_path / "view.py"
    planted.write_text(
        "def move(request, step):\n"
        "    step.station_id = 2\n"
        "    step.save()\n"
        "    Step.objects.filter(pk=1).update(status='COMPLETED')\n"
        "    options.update(a=1)\n"  # a dict, not the ORM
    )
    assert [(f, m) for f, _, m in orm_writes(planted)] == [("move", "save"), ("move", "update")]
