"""The base of every settings section: a frozen group of knobs owned by one package.

Why sections: the index, the vision pipeline, the API and the Cloudinary webhook
each own their knobs and their defaults, declared once, next to the code that
reads them. :class:`facesearch.config.Settings` only assembles the sections.

Environment names stay flat (``FACESEARCH_INDEX_DTYPE``, ``FACESEARCH_MIN_FACE_PX``),
because operators and Terraform already set them: a field's name is
``FACESEARCH_`` + the section's :attr:`SettingsSection.env_prefix` + the field name,
unless the field declares its own with :func:`env_name`.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import textwrap
from functools import cache
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

#: the constraints knobs share, declared once (a new knob picks its kind, not its bounds)
Count = Annotated[int, Field(ge=1)]
Cosine = Annotated[float, Field(ge=-1.0, le=1.0)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class SettingsSection(BaseModel):
    """Frozen, validated, no unknown keys: a typo in a knob fails at start.

    A knob is documented by the docstring under it; :func:`describe` reads it (for
    ``facesearch config --markdown`` and the docs tables) only when asked. Pydantic's
    ``use_attribute_docstrings`` would do the same at import, walking the stack and parsing
    every section's source: about 80 ms of every cold start on Python < 3.13.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: prefix of this section's flat names, after ``FACESEARCH_`` (e.g. ``"index_"``)
    env_prefix: ClassVar[str] = ""

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """field name -> flat name (lower case, without ``FACESEARCH_``)."""
        names: dict[str, str] = {}
        for name, field in cls.model_fields.items():
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            names[name] = str(extra.get("env") or f"{cls.env_prefix}{name}")
        return names


def describe(owner: type[BaseModel], field: str) -> str:
    """What a knob means: a section's attribute docstring (line breaks folded), else the
    field's ``description``; empty where neither says."""
    if issubclass(owner, SettingsSection):
        for klass in owner.__mro__:
            if issubclass(klass, SettingsSection) and field in _docstrings(klass):
                return _docstrings(klass)[field]
    return owner.model_fields[field].description or ""


@cache
def _docstrings(section: type[SettingsSection]) -> dict[str, str]:
    """Field name -> the string literal right under its declaration in the class body."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(section)))
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    found: dict[str, str] = {}
    for node, after in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            found[node.target.id] = " ".join(after.value.value.split())
    return found


def env_name(flat: str) -> dict[str, Any]:
    """``Field(..., json_schema_extra=env_name("min_face_px"))``: a field's own flat name."""
    return {"env": flat}
