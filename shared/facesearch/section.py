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

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

#: the constraints knobs share, declared once (a new knob picks its kind, not its bounds)
Count = Annotated[int, Field(ge=1)]
Cosine = Annotated[float, Field(ge=-1.0, le=1.0)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class SettingsSection(BaseModel):
    """Frozen, validated, no unknown keys: a typo in a knob fails at start.

    A knob is documented by the docstring under it (``use_attribute_docstrings``): that text
    becomes its description, shown by ``facesearch config`` and in the docs tables, with its
    line breaks folded so a wrapped docstring reads as one sentence.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    #: prefix of this section's flat names, after ``FACESEARCH_`` (e.g. ``"index_"``)
    env_prefix: ClassVar[str] = ""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        for field in cls.model_fields.values():
            if field.description:
                field.description = " ".join(field.description.split())

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """field name -> flat name (lower case, without ``FACESEARCH_``)."""
        names: dict[str, str] = {}
        for name, field in cls.model_fields.items():
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            names[name] = str(extra.get("env") or f"{cls.env_prefix}{name}")
        return names


def env_name(flat: str) -> dict[str, Any]:
    """``Field(..., json_schema_extra=env_name("min_face_px"))``: a field's own flat name."""
    return {"env": flat}
