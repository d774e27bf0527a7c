"""The base of every config class (frozen, no unknown keys, attribute docstrings) and shared value checks."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

_REFERENCE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_.]*$")


def check_reference(value: str | None) -> str | None:
    """A "package.module:function" reference (model factories, custom losses)."""
    if value is not None and not _REFERENCE.fullmatch(value):
        raise ValueError(f'{value!r} is not "package.module:function". Fix: write e.g. "my_models.resnet:build"')
    return value


class Frozen(BaseModel):
    # Attribute docstrings become field descriptions: the config reference is generated from them.
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)
