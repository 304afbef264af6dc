"""One settings object for every entry point, read from ``FACESEARCH_*`` env vars.

Precedence: explicit constructor/CLI argument > environment > default. Terraform
sets the same names on the Cloud Run services, so local and deployed runs share
one vocabulary. Validated once at start: a bad value fails fast with a message
naming the variable, instead of surfacing as a strange error mid-request.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from facesearch.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODELS_DIR = REPO_ROOT / "models"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FACESEARCH_", extra="ignore")

    # --- runtime / environment -------------------------------------------------
    env: Literal["local", "dev", "prod", "test"] = Field(
        default="local", description="Deployment environment name (logged, shown in /healthz)."
    )
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING, ERROR")
    log_json: bool = Field(default=True, description="JSON log lines (Cloud Logging) or plain text")
    data_dir: Path = Field(default=Path(".facesearch"), description="Embedded mode state.")

    # --- models ------------------------------------------------------------------
    models_dir: Path = Field(
        default=DEFAULT_MODELS_DIR, description="Folder holding manifest.json and the model files."
    )
    embedder: str = Field(default="dlib-resnet-v1", description="Name in models/manifest.json")
    embedder_path: Path | None = Field(
        default=None, description="Override: path to another ONNX embedder (e.g. ArcFace R100)."
    )
    embedder_sha256: str | None = Field(
        default=None, description="Required with embedder_path: the file's pinned sha256."
    )
    embedder_input: dict[str, Any] | None = Field(
        default=None,
        description="JSON overrides of the custom embedder's input spec (size, layout, channels,"
        " mean, std, template); defaults are ArcFace 112x112.",
    )
    onnx_providers: str = Field(
        default="auto", description="Comma list of ORT providers, or 'auto' (CUDA if present)."
    )
    onnx_threads: int = Field(default=0, ge=0, description="intra-op threads; 0 = ORT default")
    embed_batch_size: int = Field(
        default=32, ge=1, le=1024, description="Faces per embedder call (GPU: larger is faster)."
    )

    # --- decode --------------------------------------------------------------------
    max_image_bytes: int = Field(
        default=20 * 1024 * 1024, ge=1, description="Larger uploads are refused (image-too-large)."
    )
    max_image_pixels: int = Field(
        default=50_000_000, ge=1, description="Pixel cap checked from the header before decoding."
    )
    min_image_side_px: int = Field(
        default=16, ge=1, description="Smaller images are refused (image-too-small)."
    )
    detect_max_side_px: int = Field(
        default=1600, ge=64, description="Images are downscaled to this for detection."
    )

    # --- detection -------------------------------------------------------------------
    min_face_px: int = Field(
        default=20, ge=8, description="Smallest face reported (shorter box side, detection px)."
    )
    detect_thresholds: tuple[float, float, float] = Field(
        default=(0.6, 0.7, 0.8), description="MTCNN P/R/O-Net score thresholds (JSON list)."
    )
    detect_scale_factor: float = Field(
        default=0.709, gt=0.1, lt=1.0, description="MTCNN image-pyramid step."
    )
    max_faces_per_image: int = Field(
        default=256, ge=1, description="Keep at most this many faces (highest scores first)."
    )

    # --- liveness & quality ---------------------------------------------------------
    liveness_model: str = Field(
        default="liveness-v1", description="Liveness model name in models/manifest.json"
    )
    liveness_threshold: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Faces scoring below are flagged live=false."
    )
    quality_min_face_px: int = Field(
        default=40, ge=1, description="Quality policy: smaller faces are rejected."
    )
    quality_min_sharpness: float = Field(
        default=30.0, ge=0.0, description="Variance of the Laplacian of the aligned face."
    )
    quality_min_brightness: float = Field(
        default=40.0, ge=0.0, le=255.0, description="Mean grey level, 0..255."
    )
    quality_max_brightness: float = Field(
        default=220.0, ge=0.0, le=255.0, description="Mean grey level, 0..255."
    )
    quality_min_contrast: float = Field(
        default=15.0, ge=0.0, description="Grey-level standard deviation."
    )
    quality_max_yaw_deg: float = Field(
        default=45.0, ge=0.0, le=90.0, description="Head turn estimated from landmarks."
    )
    quality_max_pitch_deg: float = Field(
        default=40.0, ge=0.0, le=90.0, description="Head tilt estimated from landmarks."
    )
    quality_max_roll_deg: float = Field(
        default=45.0, ge=0.0, le=180.0, description="In-plane rotation of the eye line."
    )

    # --- matching ---------------------------------------------------------------------
    match_threshold: float | None = Field(
        default=None,
        description="Cosine similarity above which two faces are the same person. "
        "None = the calibrated default recorded for the embedder in models/manifest.json.",
    )

    @field_validator("onnx_providers")
    @classmethod
    def _providers(cls, value: str) -> str:
        return value.strip() or "auto"

    # --- index & storage ---------------------------------------------------------------
    # Measured defaults: see docs/index.md (tests/bench/index.py); HNSW names in brackets.
    index_url: str | None = Field(
        default=None,
        description="Where the index lives: gs://bucket/prefix, file:///dir or a path. "
        "None = <data_dir>/index.",
    )
    index_cache_dir: Path | None = Field(
        default=None, description="Local segment cache (mmapped). None = <data_dir>/index-cache."
    )
    index_dtype: Literal["f32", "f16", "i8"] = Field(
        default="f16", description="Scalar type of stored vectors (new indexes only)."
    )
    index_connectivity: int = Field(default=32, ge=2, le=256, description="[M] graph degree")
    index_expansion_add: int = Field(default=128, ge=1, description="[efConstruction]")
    index_expansion_search: int = Field(default=64, ge=1, description="[ef] at query time")
    index_build_threads: int = Field(default=0, ge=0, description="0 = all cores")
    index_search_threads: int = Field(default=1, ge=0, description="per query batch; 0 = all")
    index_compact_min_segment: int = Field(
        default=1024, ge=1, description="Segments below this many live vectors form tier 0."
    )
    index_compact_fanout: int = Field(
        default=4, ge=2, description="Merge a size tier once it holds this many segments."
    )
    index_compact_tombstone_ratio: float = Field(
        default=0.2, gt=0.0, le=1.0, description="Rewrite a segment once this share is deleted."
    )
    index_auto_compact: bool = Field(default=True, description="Writers compact after commits.")
    index_gc_grace_s: float = Field(
        default=600.0, ge=0.0, description="Age before unreferenced segment objects are deleted."
    )
    index_commit_attempts: int = Field(default=32, ge=1, description="Manifest swap retries.")
    blob_retry_attempts: int = Field(
        default=5, ge=1, description="Tries for a transient blob-store error."
    )
    blob_retry_base_s: float = Field(
        default=0.2, ge=0.0, description="First retry delay (exponential backoff)."
    )
    blob_timeout_s: float = Field(
        default=60.0, gt=0.0, description="Per-request blob-store timeout."
    )

    # --- query API: signing, fetching, limits (facesearch.auth, .net, .api) ----------
    signing_keys: dict[str, SecretStr] = Field(
        default={},
        description="Local signing keys, JSON {key_id: secret} (cloud: the Secret Manager secret).",
    )
    signing_keys_secret: str | None = Field(
        default=None,
        description="projects/P/secrets/NAME holding JSON {key_id: secret}; read versions/latest.",
    )
    signature_max_skew_s: int = Field(
        default=300, ge=1, le=3600, description="Signed requests older/newer than this are refused."
    )
    nonce_db: Path | None = Field(
        default=None,
        description="SQLite replay-guard file (local). None = <data_dir>/nonces.sqlite3.",
    )
    client_url: str | None = Field(
        default=None, description="Client/CLI: base URL of the query API (--remote)."
    )
    client_key_id: str | None = Field(
        default=None, description="Client/CLI: key id to sign with (default: the only local key)."
    )
    client_secret: SecretStr | None = Field(
        default=None, description="Client/CLI: secret of client_key_id."
    )
    signing_service_account: str | None = Field(
        default=None, description="Service account that signs V4 crop URLs via IAM signBlob."
    )
    signed_url_ttl_s: int = Field(
        default=900, ge=1, le=7 * 24 * 3600, description="Lifetime of signed crop URLs."
    )
    index_refresh_interval_s: float = Field(
        default=30.0, ge=0.0, description="Query service: re-read the index manifest this often."
    )
    fetch_allowed_hosts: list[str] = Field(
        default=[],
        description="Hosts an image_url may point at (JSON list; '*.example.com' allowed).",
    )
    fetch_timeout_s: float = Field(
        default=10.0, gt=0.0, le=120.0, description="Whole-download deadline for image_url."
    )
    fetch_max_redirects: int = Field(
        default=3, ge=0, le=10, description="Redirects followed (each must be allow-listed)."
    )
    search_default_k: int = Field(default=10, ge=1, le=1000, description="Matches per face.")
    search_max_k: int = Field(default=100, ge=1, le=1000, description="Largest k accepted.")
    query_max_concurrent_images: int = Field(
        default=4, ge=1, description="Requests running detection at once; more get HTTP 429."
    )

    # --- event pipeline: backends, cloud resources, ingest, indexer (facesearch.ingest/.indexer)
    backend: Literal["local", "gcp"] = Field(
        default="local",
        description="gcp: GCS blobs, Pub/Sub bus, Firestore metadata; local: embedded adapters.",
    )
    project: str | None = Field(
        default=None, description="Google Cloud project id (topic paths are built from it)."
    )
    region: str | None = Field(default=None, description="Cloud Run region (logged).")
    firestore_database: str = Field(default="(default)", description="Firestore database id.")
    uploads_bucket: str | None = Field(default=None, description="Watched uploads bucket.")
    crops_bucket: str | None = Field(
        default=None, description="Face crops bucket. None = <data_dir>/crops (local)."
    )
    ingest_topic: str = Field(default="ingest-requests", description="Topic id: ingest requests.")
    embeddings_topic: str = Field(
        default="face-embeddings", description="Topic id: embeddings for the indexer."
    )
    deletions_topic: str = Field(
        default="face-deletions", description="Topic id: face ids to remove from the index."
    )
    events_topic: str = Field(
        default="face-events", description="Topic id: face_added / face_removed events."
    )
    ingest_skip_prefixes: list[str] = Field(
        default=["crops/", "index/", "_facesearch/"],
        description="Object-name prefixes ingest ignores (our own outputs; JSON list).",
    )
    ingest_faces_per_message: int = Field(
        default=256, ge=1, le=2000, description="Embeddings per face-embeddings message."
    )
    indexer_commit_window_ms: float = Field(
        default=200.0, ge=0.0, description="Group commit: gather concurrent requests this long."
    )
    indexer_commit_max_vectors: int = Field(
        default=4096, ge=1, description="Group commit: flush early at this many vectors."
    )

    # --- Cloudinary webhook (facesearch.cloudinary) -----------------------------------------
    cloudinary_cloud_name: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,128}$",
        description="Cloudinary cloud name; images are fetched only from its delivery host.",
    )
    cloudinary_api_key: str | None = Field(
        default=None, description="Cloudinary API key (public half; logged, never secret)."
    )
    cloudinary_secret_name: str | None = Field(
        default=None,
        description="projects/P/secrets/NAME holding the Cloudinary API secret (plain text);"
        " read versions/latest, refreshed every 5 min.",
    )
    cloudinary_api_secret: SecretStr | None = Field(
        default=None,
        description="Local/test Cloudinary API secret (cloud: cloudinary_secret_name).",
    )
    cloudinary_signature_max_age_s: int = Field(
        default=7200,
        ge=1,
        le=86400,
        description="Notifications whose X-Cld-Timestamp is older than this are refused.",
    )
    cloudinary_signature_algorithm: Literal["sha1", "sha256"] = Field(
        default="sha1", description="The account's notification signature algorithm."
    )
    cloudinary_secure_distribution: str | None = Field(
        default=None,
        description="Custom delivery host (private CDN CNAME) instead of res.cloudinary.com.",
    )
    cloudinary_max_side_px: int = Field(
        default=2048,
        ge=64,
        le=10000,
        description="Ingest asks Cloudinary for a derivative no larger than this (c_limit).",
    )


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning pydantic's validation error into our typed ConfigError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"FACESEARCH_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from exc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once (Cloud Run instances reuse them across requests)."""
    return load_settings()
