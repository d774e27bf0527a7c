"""The config reference (every key, type, default, meaning) generated from the config classes.

`python -m pipeline config --reference` prints it; docs/configuration.md embeds it and a test keeps the two equal,
so the documentation cannot drift from what the code accepts.
"""

from __future__ import annotations

import json
import types
import typing

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from pipeline.config.schema import PipelineConfig

DICT_KEY_NAMES = {"space": "<setting>"}  # what the keys of a mapping field are, where they are not columns


def reference_rows(model: type[BaseModel] = PipelineConfig, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, type, default, description) for every field, nested sections flattened to dotted keys."""
    rows = []
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        nested, suffix = _nested_model(field.annotation)
        if nested is not None and suffix == "":
            rows += reference_rows(nested, key + ".")
            continue
        rows.append((key, _type_name(field.annotation), _default(field), field.description or ""))
        if nested is not None:
            suffix = suffix.replace("<column>", DICT_KEY_NAMES.get(name, "<column>"))
            rows += reference_rows(nested, key + suffix.rstrip(".") + ".")
    return rows


def reference_markdown() -> str:
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, type_name, default, description in reference_rows():
        cell = " ".join(description.split()).replace("|", "\\|")  # one line; a bare | would end the cell
        lines.append(f"| `{key}` | {type_name} | {default} | {cell} |")
    return "\n".join(lines) + "\n"


def _nested_model(annotation) -> tuple[type[BaseModel] | None, str]:
    """The config class inside a field: itself (""), optional ("."), in a list ("[]"), or dict values (".<column>")."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, ""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1 and isinstance(inner[0], type) and issubclass(inner[0], BaseModel):
            return inner[0], "."
    if origin is list and args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
        return args[0], "[]"
    if origin is dict and len(args) == 2 and isinstance(args[1], type) and issubclass(args[1], BaseModel):
        return args[1], ".<column>"
    return None, ""


def _type_name(annotation) -> str:
    if isinstance(annotation, type):
        return annotation.__name__.removesuffix("Config")
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join("null" if a is type(None) else _type_name(a) for a in args)
    if origin is not None:
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args)}]"
    return str(annotation)


def _default(field) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return ""
    return f"`{json.dumps(value)}`"
