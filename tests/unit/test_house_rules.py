"""House rules that keep the architecture honest."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"flask", "flask_sqlalchemy", "sqlalchemy", "wtforms", "flask_wtf", "receptions"}


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_scheduling_is_pure_domain_code():
    files = sorted((ROOT / "scheduling").rglob("*.py"))
    assert files, "scheduling/ has no modules"
    offenders = {str(p.relative_to(ROOT)): sorted(_imported_roots(p) & FORBIDDEN) for p in files}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_only_services_commit():
    """Views and models never commit; services do, through write_transaction."""
    offenders = []
    for path in (ROOT / "receptions").rglob("*.py"):
        if path.name in ("views.py", "models.py", "forms.py") and ".commit(" in path.read_text():
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_templates_declare_the_page_language():
    base = (ROOT / "templates" / "base.html").read_text()
    assert '<html lang="{{ current_language }}">' in base


def test_every_form_builds_on_the_one_base_form():
    """receptions.forms.Form reads WTForms' messages once; FlaskForm itself re-reads them."""
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "receptions").rglob("*.py")
        if path.name != "forms.py" or path.parent.name != "receptions"
        if "FlaskForm" in path.read_text(encoding="utf-8")
    ]
    assert offenders == []


GETTEXT_NAMES = {"_", "_l", "gettext", "lazy_gettext", "ngettext"}


def test_no_message_is_marked_inside_an_f_string():
    """pybabel does not extract `_()` inside an f-string, so its text is never translated; a
    message with parts is one msgid with placeholders: _("Meeting: %(institution)s", ...)."""
    offenders = []
    for path in sorted((ROOT / "receptions").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.JoinedStr):
                offenders += [
                    f"{path.relative_to(ROOT)}:{call.lineno}"
                    for call in ast.walk(node)
                    if isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Name)
                    and call.func.id in GETTEXT_NAMES
                ]
    assert offenders == []


def test_every_audit_action_and_record_type_has_words_for_the_admin():
    """The audit log shows actions and kinds of record in the reader's language: every audit()
    call's action (each literal of its first argument) and kind of record has a label."""
    from receptions.audit.labels import ACTION_LABELS, RECORD_TYPE_LABELS

    actions, record_types = set(), set()
    for path in (ROOT / "receptions").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "audit"
                and len(node.args) >= 2
            ):
                continue
            for part in ast.walk(node.args[0]):
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    actions.add(part.value)
            if isinstance(node.args[1], ast.Constant):
                record_types.add(node.args[1].value)
    assert len(actions) > 20 and len(record_types) > 8
    assert sorted(actions - set(ACTION_LABELS)) == []
    assert sorted(record_types - set(RECORD_TYPE_LABELS)) == []
