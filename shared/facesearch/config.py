"""One settings object for every entry point, read from ``FACESEARCH_*`` env vars.

:class:`Settings` holds a few deployment-wide fields (environment, backend,
project, data dir) and one *section* per package that owns knobs
(:class:`facesearch.section.SettingsSection`): ``settings.index.dtype``,
``settings.vision.min_face_px``, ``settings.cloudinary.cloud_name``... Each default
is declared once, in its section.

Environment names stay flat — ``FACESEARCH_INDEX_DTYPE``, ``FACESEARCH_MIN_FACE_PX`` —
because operators and Terraform already use them; :func:`flat_names` maps each to its
section field, and the same flat names work as keyword overrides
(``load_settings(index_dtype="f32")``, ``settings.with_overrides(...)``).

Precedence: explicit constructor/CLI argument > environment > default. Validated
once at start: a bad value fails fast with a message naming the variable, instead of
surfacing as a strange error mid-request.
"""

from __future__ import annotations

import json
import os
import types
import typing
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from facesearch.api.settings import ApiSettings, ClientSettings
from facesearch.cloudinary.settings import CloudinarySettings
from facesearch.console.settings import ConsoleSettings
from facesearch.errors import ConfigError
from facesearch.index.params import IndexParams
from facesearch.indexer.settings import IndexerSettings
from facesearch.ingest.settings import IngestSettings
from facesearch.net.settings import FetchSettings
from facesearch.people.settings import PeopleSettings
from facesearch.section import SettingsSection
from facesearch.storage.settings import StorageSettings
from facesearch.telemetry.settings import OpsSettings, TelemetrySettings
from facesearch.video.settings import VideoSettings
from facesearch.vision.settings import DEFAULT_MODELS_DIR, REPO_ROOT, QualityPolicy, VisionSettings

ENV_PREFIX = "FACESEARCH_"

__all__ = [
    "DEFAULT_MODELS_DIR",
    "ENV_PREFIX",
    "REPO_ROOT",
    "Settings",
    "env_var",
    "flat_names",
    "get_settings",
    "load_settings",
]


class Settings(BaseSettings):
    """Everything a process is configured with, validated once at start.

    Build it with :func:`load_settings` (typed :class:`ConfigError` on a bad value)
    or :func:`get_settings` (once per process). It is frozen: derive variants with
    :meth:`with_overrides`.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    # --- runtime / deployment ------------------------------------------------------------
    env: Literal["local", "dev", "prod", "test"] = Field(
        default="local", description="Deployment environment name (logged, shown in /healthz)."
    )
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING, ERROR")
    log_json: bool = Field(default=True, description="JSON log lines (Cloud Logging) or plain text")
    data_dir: Path = Field(default=Path(".facesearch"), description="Embedded mode state.")
    backend: Literal["local", "gcp"] = Field(
        default="local",
        description="gcp: GCS blobs, Pub/Sub bus, Firestore metadata; local: embedded adapters.",
    )
    project: str | None = Field(
        default=None, description="Google Cloud project id (topic paths are built from it)."
    )
    region: str | None = Field(
        default=None, description="Cloud Run region (a label on every log line)."
    )

    # --- sections, each owned by its package -----------------------------------------------
    vision: VisionSettings = Field(default_factory=VisionSettings)
    quality: QualityPolicy = Field(default_factory=QualityPolicy)
    index: IndexParams = Field(default_factory=IndexParams)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    indexer: IndexerSettings = Field(default_factory=IndexerSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    fetch: FetchSettings = Field(default_factory=FetchSettings)
    client: ClientSettings = Field(default_factory=ClientSettings)
    cloudinary: CloudinarySettings = Field(default_factory=CloudinarySettings)
    video: VideoSettings = Field(default_factory=VideoSettings)
    people: PeopleSettings = Field(default_factory=PeopleSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    ops: OpsSettings = Field(default_factory=OpsSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)

    @model_validator(mode="before")
    @classmethod
    def _nest_flat_names(cls, data: Any) -> Any:
        """Route flat keyword overrides (``index_dtype=...``) into their section."""
        return nest_flat(data) if isinstance(data, dict) else data

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, FlatEnvSource(settings_cls), env_settings)

    def with_overrides(self, **flat: Any) -> Settings:
        """A validated copy with some values replaced (flat names, as in the environment)."""
        data = {name: getattr(self, name) for name in type(self).model_fields}
        for name, value in data.items():
            if isinstance(value, SettingsSection):
                data[name] = value.model_dump()
        return load_settings(**nest_flat({**data, **flat}))


# --- flat names ----------------------------------------------------------------------------


def _sections() -> dict[str, type[SettingsSection]]:
    out: dict[str, type[SettingsSection]] = {}
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, SettingsSection):
            out[name] = annotation
    return out


@cache
def flat_names() -> dict[str, tuple[str | None, str]]:
    """Flat name (lower case, no prefix) -> (section or None for top level, field)."""
    table: dict[str, tuple[str | None, str]] = {}
    sections = _sections()
    for name in Settings.model_fields:
        if name in sections:
            for field, flat in sections[name].env_names().items():
                if flat in table:
                    raise RuntimeError(f"flat setting name {flat!r} is declared twice")
                table[flat] = (name, field)
        else:
            table[name] = (None, name)
    return table


def env_var(section: str | None, field: str) -> str:
    """The environment variable of a field (``env_var("index", "dtype")``)."""
    for flat, target in flat_names().items():
        if target == (section, field):
            return ENV_PREFIX + flat.upper()
    raise KeyError(f"no setting {section}.{field}")


def nest_flat(data: dict[str, Any]) -> dict[str, Any]:
    """Move flat keys of section fields into ``data[section][field]`` (flat keys win)."""
    table = flat_names()
    out = dict(data)
    for key in list(out):
        section, field = table.get(key, (None, key))
        if section is None:
            continue
        value = out.pop(key)
        current = out.get(section)
        if isinstance(current, BaseModel):
            current = current.model_dump()
        out[section] = {**(current or {}), field: value}
    return out


def _is_complex(annotation: Any) -> bool:
    """Fields given as JSON in the environment: lists, tuples, dicts, models."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_complex(arg) for arg in typing.get_args(annotation) if arg is not type(None))
    if origin in (list, tuple, dict, set, frozenset):
        return True
    return isinstance(annotation, type) and issubclass(annotation, BaseModel | list | dict | tuple)


class FlatEnvSource(PydanticBaseSettingsSource):
    """Reads section fields from their flat environment names (case-insensitive)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ builds the whole dict

    def __call__(self) -> dict[str, Any]:
        environ = {k.upper(): v for k, v in os.environ.items() if k.upper().startswith(ENV_PREFIX)}
        sections = _sections()
        out: dict[str, dict[str, Any]] = {}
        for flat, (section, field) in flat_names().items():
            name = ENV_PREFIX + flat.upper()
            if section is None or name not in environ:
                continue
            raw = environ[name]
            value: Any = raw
            if _is_complex(sections[section].model_fields[field].annotation):
                try:
                    value = json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"invalid settings: {name}: not valid JSON ({exc})") from exc
            out.setdefault(section, {})[field] = value
        return out


# --- construction -----------------------------------------------------------------------------


def _variable(loc: tuple[int | str, ...]) -> str:
    """The environment name a validation error location points at."""
    if len(loc) >= 2 and isinstance(loc[0], str) and loc[0] in _sections():
        try:
            rest = "".join(f"[{p}]" for p in loc[2:])
            return env_var(loc[0], str(loc[1])) + rest
        except KeyError:
            pass
    return ENV_PREFIX + "_".join(str(p) for p in loc).upper()


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning pydantic's validation error into our typed ConfigError.

    ``overrides`` use flat names (``index_dtype="f32"``) or whole sections.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(f"{_variable(err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"invalid settings: {problems}") from exc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once (Cloud Run instances reuse them across requests)."""
    return load_settings()
