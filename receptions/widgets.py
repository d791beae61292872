"""The markup of WTForms' standard widgets, built with plain strings.

WTForms renders each attribute through `Markup.format` and reads the field's flags with `dir()`;
on the booking form that was half of the page's rendering time, and the booking form is the page a
rush opens most. `render` produces the same HTML, byte for byte, for the widget classes listed in
`_INPUTS`, `TextArea`, `Select` and a `ListWidget` of checkboxes or radio buttons (what this
project's forms use); for any other widget, a subclass or a field with a datalist it returns None
and the caller lets WTForms render. `tests/unit/test_widgets.py` compares both renderings for
every field of every form in the project.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from markupsafe import Markup, escape
from wtforms import widgets
from wtforms.fields.choices import SelectFieldBase
from wtforms.widgets.core import clean_key as _clean

_INPUTS = {
    cls: (cls.input_type, frozenset(cls.validation_attrs))
    for cls in (
        widgets.TextInput,
        widgets.EmailInput,
        widgets.TelInput,
        widgets.SearchInput,
        widgets.URLInput,
        widgets.NumberInput,
        widgets.DateInput,
        widgets.MonthInput,
        widgets.TimeInput,
        widgets.HiddenInput,
        widgets.PasswordInput,
        widgets.CheckboxInput,
        widgets.RadioInput,
    )
}
_TEXTAREA_ATTRS = frozenset(widgets.TextArea.validation_attrs)
_SELECT_ATTRS = frozenset(widgets.Select.validation_attrs)


def attributes(params: Mapping[str, Any]) -> str:
    """`html_params`: sorted by name, True as a bare name, False left out, values escaped."""
    parts = []
    for key, value in sorted(params.items()):
        if value is True:
            parts.append(_clean(key))
        elif value is not False:
            parts.append(f'{_clean(key)}="{escape(value)}"')
    return " ".join(parts)


def _with_flags(params: dict[str, Any], flags: Any, allowed: frozenset[str], call: bool) -> None:
    """The field's validation flags (required, maxlength…) that the widget shows, unless given."""
    for key, value in vars(flags).items():
        if key in allowed and key not in params:
            params[key] = value() if call and callable(value) else value


def _input(widget: Any, field: Any, params: dict[str, Any], flags: Any) -> str:
    input_type, allowed = _INPUTS[type(widget)]
    if type(widget) is widgets.PasswordInput and widget.hide_value:
        params["value"] = ""
    elif (type(widget) is widgets.CheckboxInput and getattr(field, "checked", field.data)) or (
        type(widget) is widgets.RadioInput and field.checked
    ):
        params.setdefault("checked", True)
    params.setdefault("id", field.id)
    params.setdefault("type", input_type)
    if "value" not in params:
        params["value"] = field._value()
    _with_flags(params, flags, allowed, call=True)
    params["name"] = field.name
    return f"<input {attributes(params)}>"


def _options(choices: Iterable[Any]) -> str:
    html = []
    for choice in choices:
        value = str(choice.value) if isinstance(choice.value, bool) else choice.value
        options = {"value": value, **(choice.render_kw or {})}
        if choice.selected:
            options["selected"] = True
        html.append(
            f"<option {attributes(options)}>{escape(choice.label or choice.value)}</option>"
        )
    return "".join(html)


def _select(widget: widgets.Select, field: Any, params: dict[str, Any]) -> str:
    params.setdefault("id", field.id)
    if widget.multiple:
        params["multiple"] = True
    _with_flags(params, field.flags, _SELECT_ATTRS, call=False)
    params["name"] = field.name
    html = [f"<select {attributes(params)}>"]
    if field.has_groups():
        for group, choices in field._iter_groups_normalized():
            if group is not None:
                html.append(f"<optgroup {attributes({'label': group})}>")
            html.append(_options(choices))
            if group is not None:
                html.append("</optgroup>")
    else:
        html.append(_options(field._iter_choices_normalized()))
    html.append("</select>")
    return "".join(html)


class _Option:
    """What an option's widget reads of the `_Option` field WTForms would build for it."""

    __slots__ = ("checked", "data", "id", "name")

    def __init__(self, field_id: str, name: str, data: Any, checked: bool) -> None:
        self.id, self.name, self.data, self.checked = field_id, name, data, checked

    def _value(self) -> str:
        return str(self.data)


def _option_flags(field: SelectFieldBase) -> Any:
    """The flags WTForms gives each option field: its validators', and the option widget's."""
    flags = type(field.flags)()
    for source in (*field.validators, field.option_widget):
        for key, value in getattr(source, "field_flags", {}).items():
            setattr(flags, key, value)
    return flags


def _choice_list(widget: widgets.ListWidget, field: SelectFieldBase, params: dict[str, Any]) -> str:
    params.setdefault("id", field.id)
    html = [f"<{widget.html_tag} {attributes(params)}>"]
    option_widget = field.option_widget
    flags = _option_flags(field)
    extra = {_clean(k): v for k, v in (field.render_kw or {}).items()}
    for index, choice in enumerate(field._iter_choices_normalized()):
        option_id = f"{field.id}-{index}"
        option = _Option(option_id, field.name, choice.value, choice.selected)
        control = _input(option_widget, option, dict(extra), flags)
        label = f'<label for="{escape(option_id)}">{escape(choice.label or choice.value)}</label>'
        html.append(
            f"<li>{label} {control}</li>" if widget.prefix_label else f"<li>{control} {label}</li>"
        )
    html.append(f"</{widget.html_tag}>")
    return "".join(html)


def _html(field: Any, params: dict[str, Any]) -> str | None:
    widget = field.widget
    kind = type(widget)
    if getattr(field, "_datalist", None) is not None:
        return None
    if kind in _INPUTS:
        return _input(widget, field, params, field.flags)
    if kind is widgets.TextArea:
        params.setdefault("id", field.id)
        _with_flags(params, field.flags, _TEXTAREA_ATTRS, call=False)
        params["name"] = field.name
        return f"<textarea {attributes(params)}>\r\n{escape(field._value())}</textarea>"
    if kind is widgets.Select:
        return _select(widget, field, params)
    if (
        kind is widgets.ListWidget
        and isinstance(field, SelectFieldBase)
        and type(field.option_widget) in (widgets.CheckboxInput, widgets.RadioInput)
        and type(field)._Option is SelectFieldBase._Option
    ):
        return _choice_list(widget, field, params)
    return None


def render(field: Any, params: dict[str, Any]) -> Markup | None:
    """The field's control with `params` (clean keys) as WTForms would print it, or None."""
    html = _html(field, params)
    # Every value in it went through escape() (or is WTForms' own Markup).
    return None if html is None else Markup(html)  # noqa: S704
