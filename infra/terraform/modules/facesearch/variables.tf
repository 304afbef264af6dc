# ---------------------------------------------------------------------------- identity
variable "project_id" {
  description = "Google Cloud project to deploy into."
  type        = string
}

variable "region" {
  description = "Region for Cloud Run, Artifact Registry (and default bucket/Firestore location). Must offer Cloud Run L4 GPUs."
  type        = string
}

variable "environment" {
  description = "Environment name (dev, prod, ...): part of every resource name."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,7}$", var.environment))
    error_message = "environment: 2-8 lowercase letters/digits, starting with a letter (service-account ids are short)."
  }

  validation {
    condition     = contains(["dev", "prod", "test"], var.environment)
    error_message = "environment: dev, prod or test: it becomes FACESEARCH_ENV, which facesearch.config.Settings accepts only as local, dev, prod or test (any other value stops every service at start)."
  }
}

variable "name_prefix" {
  description = "Application prefix of resource names."
  type        = string
  default     = "facesearch"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}$", var.name_prefix))
    error_message = "name_prefix: 2-15 lowercase letters, digits or dashes."
  }
}

variable "labels" {
  description = "Extra labels on every resource that takes labels."
  type        = map(string)
  default     = {}
}

variable "enable_apis" {
  description = "Enable the required Google APIs (set false where a platform team does it)."
  type        = bool
  default     = true
}

variable "deletion_protection" {
  description = "Protect services, the Firestore database and secrets from deletion."
  type        = bool
  default     = true
}

variable "kms_key_name" {
  description = "Optional CMEK key for buckets and Pub/Sub topics (same location as the buckets)."
  type        = string
  default     = null
}

# ---------------------------------------------------------------------------- image
variable "image" {
  description = "Function image, e.g. REGION-docker.pkg.dev/PROJECT/REPO/facesearch@sha256:... (see docs/deploy.md)."
  type        = string
}

variable "image_pushers" {
  description = "Members allowed to push images to the Artifact Registry repository (CI, Cloud Build)."
  type        = map(string)
  default     = {}
}

variable "immutable_image_tags" {
  description = "Refuse to move an image tag once pushed."
  type        = bool
  default     = false
}

variable "images_kept" {
  description = "Most recent image versions the cleanup policy always keeps."
  type        = number
  default     = 20
}

variable "registry_kms_key_name" {
  description = "Optional CMEK key for the Artifact Registry repository."
  type        = string
  default     = null
}

# ---------------------------------------------------------------------------- storage
variable "bucket_location" {
  description = "Bucket location; null = the region. The Eventarc trigger follows it."
  type        = string
  default     = null
}

variable "bucket_names" {
  description = "Override bucket names (keys: uploads, index, crops); default <project>-<prefix>-<env>-<kind>."
  type        = map(string)
  default     = {}

  validation {
    condition     = length(setsubtract(keys(var.bucket_names), ["uploads", "index", "crops"])) == 0
    error_message = "bucket_names keys are uploads, index, crops."
  }
}

variable "force_destroy_buckets" {
  description = "Let `terraform destroy` delete non-empty buckets (dev only)."
  type        = bool
  default     = false
}

variable "soft_delete_retention_seconds" {
  description = "Soft-delete window on the buckets (0 = off; 7..90 days)."
  type        = number
  default     = 604800
}

variable "access_log_bucket" {
  description = "Optional bucket receiving usage logs of the three buckets."
  type        = string
  default     = null
}

variable "index_prefix" {
  description = "Object prefix of the index inside the index bucket (FACESEARCH_INDEX_URL)."
  type        = string
  default     = "index"
}

variable "index_gc_grace_seconds" {
  description = "FACESEARCH_INDEX_GC_GRACE_S: how long the indexer keeps a retired segment before deleting it (must exceed query's refresh interval + request timeout)."
  type        = number
  default     = 900

  validation {
    condition     = var.index_gc_grace_seconds > var.index_refresh_interval_seconds + var.query.timeout_seconds
    error_message = "index_gc_grace_seconds must exceed index_refresh_interval_seconds + query.timeout_seconds: a reader may still use a retired segment that long."
  }
}

variable "index_grace_period_days" {
  description = "Days a segment deleted by the indexer's GC (or a replaced manifest) stays recoverable as a noncurrent version."
  type        = number
  default     = 7

  validation {
    condition     = var.index_grace_period_days >= 1
    error_message = "Keep retired index segments at least one day."
  }
}

variable "index_manifest_versions_kept" {
  description = "Noncurrent manifest versions kept regardless of age."
  type        = number
  default     = 100
}

variable "crops_ttl_days" {
  description = "Delete face crops after this many days; null = keep."
  type        = number
  default     = null
}

variable "uploads_ttl_days" {
  description = "Delete uploaded originals after this many days; null = keep."
  type        = number
  default     = null
}

variable "uploads_noncurrent_days" {
  description = "Days an overwritten or deleted upload stays recoverable as a noncurrent version."
  type        = number
  default     = 30
}

variable "uploaders" {
  description = "Members allowed to create objects in the uploads bucket, keyed by a static name."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------- messaging
variable "pubsub_minimum_backoff" {
  description = "Push retry backoff floor."
  type        = string
  default     = "10s"
}

variable "pubsub_maximum_backoff" {
  description = "Push retry backoff ceiling."
  type        = string
  default     = "600s"
}

variable "pubsub_max_delivery_attempts" {
  description = "Deliveries before a message is dead-lettered."
  type        = number
  default     = 10
}

variable "deletion_publishers" {
  description = "Extra members (operators, tools) allowed to publish to face-deletions."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------- retention
variable "retention_schedule" {
  description = "Cron schedule (in retention_time_zone) of the Cloud Scheduler job that publishes the retention control message to face-deletions; the indexer then forgets, per collection, faces older than that collection's retention_days. null = no job (publish the message by hand: docs/deploy.md)."
  type        = string
  default     = "17 3 * * *"

  validation {
    condition     = var.retention_schedule == null || can(regex("^\\S+( \\S+){4}$", var.retention_schedule))
    error_message = "retention_schedule: a unix-cron string of five fields (e.g. \"17 3 * * *\"), or null to disable the job."
  }
}

variable "retention_time_zone" {
  description = "tz database time zone of retention_schedule."
  type        = string
  default     = "Etc/UTC"
}

variable "sweep_schedule" {
  description = "Cron schedule (UTC) of the Cloud Scheduler job that publishes the sweep control message to face-deletions; the indexer re-queues images stuck in processing for longer than FACESEARCH_OPS_STUCK_AFTER_S. null = no job."
  type        = string
  default     = "*/10 * * * *"

  validation {
    condition     = var.sweep_schedule == null || can(regex("^\\S+( \\S+){4}$", var.sweep_schedule))
    error_message = "sweep_schedule: a unix-cron string of five fields, or null to disable the job."
  }
}

# ---------------------------------------------------------------------------- operations
variable "trace_sample_ratio" {
  description = "Share of new traces sampled into Cloud Trace (parent-based: a sampled caller's trace is always followed)."
  type        = number
  default     = 0.1

  validation {
    condition     = var.trace_sample_ratio >= 0 && var.trace_sample_ratio <= 1
    error_message = "trace_sample_ratio: between 0 and 1."
  }
}

variable "searchable_p95_seconds" {
  description = "SLO: 95% of uploads are searchable within this many seconds; the alert fires when the 30-minute p95 is above it."
  type        = number
  default     = 120
}

variable "oldest_unacked_seconds" {
  description = "Alert when a pushed subscription's oldest unacknowledged message is older than this (a stuck consumer)."
  type        = number
  default     = 900
}

# ---------------------------------------------------------------------------- services
variable "ingest" {
  description = "ingest service sizing. A GPU needs >= 4 vCPU and >= 16Gi; concurrency lets several events share one GPU batch. It also processes video chunks (docs/video.md): one request per chunk of video_chunk_seconds, so the timeout must leave room for a chunk sharing the instance with others."
  type = object({
    cpu             = optional(string, "4")
    memory          = optional(string, "16Gi")
    gpu_count       = optional(number, 1)
    min_instances   = optional(number, 0)
    max_instances   = optional(number, 2)
    concurrency     = optional(number, 8)
    timeout_seconds = optional(number, 600)
    ingress         = optional(string, "INGRESS_TRAFFIC_INTERNAL_ONLY")
    env             = optional(map(string), {})
  })
  default = {}

  validation {
    condition     = var.ingest.timeout_seconds >= 300 && var.ingest.timeout_seconds <= 3600
    error_message = "ingest.timeout_seconds: 300..3600 (a video chunk is one request; the push subscription's ack deadline is min(timeout, 600))."
  }
}

variable "video_chunk_seconds" {
  description = "FACESEARCH_VIDEO_CHUNK_S: seconds of video per chunk task (one ingest request each). 60 s of 720p costs about 15 s of one CPU core on the CPU pipeline (docs/video.md), well inside the ingest timeout even with 8 requests sharing an instance."
  type        = number
  default     = 60

  validation {
    condition     = var.video_chunk_seconds >= 10 && var.video_chunk_seconds <= 300
    error_message = "video_chunk_seconds: 10..300 (longer chunks risk the ingest timeout; shorter ones multiply tasks and stitching)."
  }
}

variable "indexer" {
  description = "indexer service sizing; few instances, since manifest swaps serialise writers."
  type = object({
    cpu             = optional(string, "1")
    memory          = optional(string, "2Gi")
    min_instances   = optional(number, 0)
    max_instances   = optional(number, 2)
    concurrency     = optional(number, 4)
    timeout_seconds = optional(number, 300)
    ingress         = optional(string, "INGRESS_TRAFFIC_INTERNAL_ONLY")
    env             = optional(map(string), {})
  })
  default = {}
}

variable "clusterer" {
  description = "clusterer service sizing (CPU): face-events in, persons out; a few instances (racing ones are safe, Firestore transactions)."
  type = object({
    cpu             = optional(string, "1")
    memory          = optional(string, "1Gi")
    min_instances   = optional(number, 0)
    max_instances   = optional(number, 4)
    concurrency     = optional(number, 8)
    timeout_seconds = optional(number, 120)
    ingress         = optional(string, "INGRESS_TRAFFIC_INTERNAL_ONLY")
    env             = optional(map(string), {})
  })
  default = {}
}

variable "recluster_job" {
  description = "Sizing of the recluster Cloud Run Job (facesearch persons recluster: every active collection; run by hand after a parameter or model change)."
  type = object({
    cpu             = optional(string, "2")
    memory          = optional(string, "8Gi")
    timeout_seconds = optional(number, 3600)
  })
  default = {}
}

variable "query" {
  description = "query service sizing; CPU by default, gpu_count = 1 puts it on an L4 too."
  type = object({
    cpu             = optional(string, "2")
    memory          = optional(string, "4Gi")
    gpu_count       = optional(number, 0)
    min_instances   = optional(number, 0)
    max_instances   = optional(number, 4)
    concurrency     = optional(number, 16)
    timeout_seconds = optional(number, 60)
    ingress         = optional(string, "INGRESS_TRAFFIC_ALL")
    env             = optional(map(string), {})
  })
  default = {}
}

variable "cloudinary" {
  description = "cloudinary webhook sizing (small)."
  type = object({
    cpu             = optional(string, "1")
    memory          = optional(string, "512Mi")
    min_instances   = optional(number, 0)
    max_instances   = optional(number, 2)
    concurrency     = optional(number, 40)
    timeout_seconds = optional(number, 30)
    ingress         = optional(string, "INGRESS_TRAFFIC_ALL")
    env             = optional(map(string), {})
  })
  default = {}
}

variable "gpu_type" {
  description = "Cloud Run accelerator for GPU services."
  type        = string
  default     = "nvidia-l4"
}

variable "gpu_zonal_redundancy_disabled" {
  description = "true: GPU instances without zonal redundancy (cheaper, less quota); false: redundant."
  type        = bool
  default     = true
}

variable "ingest_embed_batch_size" {
  description = "FACESEARCH_EMBED_BATCH_SIZE for ingest."
  type        = number
  default     = 32

  validation {
    condition     = var.ingest_embed_batch_size >= 1 && var.ingest_embed_batch_size <= 1024 && floor(var.ingest_embed_batch_size) == var.ingest_embed_batch_size
    error_message = "ingest_embed_batch_size: a whole number 1..1024 (FACESEARCH_EMBED_BATCH_SIZE)."
  }
}

variable "query_public" {
  description = "Let anyone reach the query API (it still verifies HMAC signatures on every route but /healthz). false: only query_invokers."
  type        = bool
  default     = false
}

variable "console_access" {
  description = "Web console on the query service: off; iam (Cloud Run IAM: keep query_public false, list the console users in query_invokers; the console re-verifies their ID token); iap (Identity-Aware Proxy in front: the console trusts only IAP's signed JWT assertion; set console_audience)."
  type        = string
  default     = "off"
  validation {
    condition     = contains(["off", "iam", "iap"], var.console_access)
    error_message = "console_access: off, iam or iap."
  }
}

variable "console_audience" {
  description = "Expected audience of the identity JWT: IAP's /projects/NUMBER/locations/REGION/services/NAME (iap); default the query URL (iam)."
  type        = string
  default     = null
}

variable "query_invokers" {
  description = "Members given roles/run.invoker on query when it is not public."
  type        = map(string)
  default     = {}
}

variable "cloudinary_public" {
  description = "Let Cloudinary reach the webhook (required for Cloudinary notifications; calls are verified by signature)."
  type        = bool
  default     = true
}

variable "signed_url_ttl_seconds" {
  description = "Lifetime of the V4 signed crop URLs that query returns."
  type        = number
  default     = 900

  validation {
    condition     = var.signed_url_ttl_seconds >= 1 && var.signed_url_ttl_seconds <= 604800 && floor(var.signed_url_ttl_seconds) == var.signed_url_ttl_seconds
    error_message = "signed_url_ttl_seconds: a whole number 1..604800 (V4 signed URLs live at most 7 days; FACESEARCH_SIGNED_URL_TTL_S)."
  }
}

variable "index_refresh_interval_seconds" {
  description = "How often a query instance re-reads the index manifest."
  type        = number
  default     = 30

  validation {
    condition     = var.index_refresh_interval_seconds >= 0
    error_message = "index_refresh_interval_seconds must be >= 0 (FACESEARCH_INDEX_REFRESH_INTERVAL_S)."
  }
}

# ---------------------------------------------------------------------------- firestore
variable "firestore_database_name" {
  description = "Firestore database id."
  type        = string
  default     = "(default)"
}

variable "firestore_location" {
  description = "Firestore location (region or nam5/eur3); null = the region."
  type        = string
  default     = null
}

variable "firestore_point_in_time_recovery" {
  description = "Enable 7-day point-in-time recovery."
  type        = bool
  default     = false
}

# Collection-scoped indexes apply to every Firestore collection with that id, wherever it is:
# `faces` covers the default collection's top-level faces/ and each face collection's
# collections/<id>/faces alike, so collections need no indexes of their own.
variable "firestore_composite_indexes" {
  description = "Composite indexes the code's queries need, per collection id (so also under collections/<id>/; contract: docs/deploy.md)."
  type = map(object({
    collection = string
    fields = list(object({
      field_path = string
      order      = string
    }))
  }))
  default = {
    faces-by-image = {
      collection = "faces"
      fields = [
        { field_path = "image_id", order = "ASCENDING" },
        { field_path = "face_index", order = "ASCENDING" },
      ]
    }
    faces-by-model = {
      collection = "faces"
      fields = [
        { field_path = "model_id", order = "ASCENDING" },
        { field_path = "created_at", order = "ASCENDING" },
      ]
    }
    images-by-status = {
      collection = "images"
      fields = [
        { field_path = "status", order = "ASCENDING" },
        { field_path = "updated_at", order = "DESCENDING" },
      ]
    }
    tracks-by-video = {
      collection = "tracks"
      fields = [
        { field_path = "video_id", order = "ASCENDING" },
        { field_path = "track_index", order = "ASCENDING" },
      ]
    }
    video-chunks-done = {
      collection = "video_chunks"
      fields = [
        { field_path = "plan_id", order = "ASCENDING" },
        { field_path = "done", order = "ASCENDING" },
      ]
    }
  }
}

# ---------------------------------------------------------------------------- secrets
variable "signing_keys" {
  description = "Optional JSON {\"key_id\": \"secret\", ...} written write-only when signing_keys_version > 0."
  type        = string
  default     = null
  sensitive   = true
  ephemeral   = true
}

variable "signing_keys_version" {
  description = "0: manage the signing-keys value with gcloud; N: write var.signing_keys; bump to rotate."
  type        = number
  default     = 0
}

variable "cloudinary_api_secret" {
  description = "Optional Cloudinary API secret written write-only when cloudinary_api_secret_version > 0."
  type        = string
  default     = null
  sensitive   = true
  ephemeral   = true
}

variable "cloudinary_api_secret_version" {
  description = "0: manage the Cloudinary secret with gcloud; N: write var.cloudinary_api_secret; bump to rotate."
  type        = number
  default     = 0
}

variable "cloudinary_cloud_name" {
  description = "Cloudinary cloud name (not secret); set on cloudinary and ingest, which fetches images only from its delivery host. \"\" = Cloudinary unused (variable not set)."
  type        = string
  default     = ""

  validation {
    condition     = var.cloudinary_cloud_name == "" || can(regex("^[A-Za-z0-9_-]{1,128}$", var.cloudinary_cloud_name))
    error_message = "cloudinary_cloud_name: 1-128 letters, digits, _ or - (what FACESEARCH_CLOUDINARY_CLOUD_NAME accepts), or \"\"."
  }
}

variable "cloudinary_secure_distribution" {
  description = "Optional custom Cloudinary delivery host (private CDN CNAME, e.g. images.example.com) used instead of res.cloudinary.com; \"\" = none."
  type        = string
  default     = ""

  validation {
    condition     = var.cloudinary_secure_distribution == "" || can(regex("^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$", var.cloudinary_secure_distribution))
    error_message = "cloudinary_secure_distribution: a bare host name (no scheme, port or path), or \"\"."
  }
}

# ---------------------------------------------------------------------------- monitoring
variable "notification_channels" {
  description = "Monitoring notification channel ids for all alerts."
  type        = list(string)
  default     = []
}

variable "error_rate_threshold" {
  description = "5xx ratio per service that raises an alert."
  type        = number
  default     = 0.05
}

variable "ingest_failures_threshold" {
  description = "Ingest failures per 10 minutes that raise an alert."
  type        = number
  default     = 10
}

variable "query_public_url" {
  description = "Public base URL of the query API (custom domain or load balancer); empty = Cloud Run's deterministic service URL."
  type        = string
  default     = ""

  validation {
    condition     = var.query_public_url == "" || can(regex("^https://[^/?#[:space:]]+(/[^?#[:space:]]*)?$", var.query_public_url))
    error_message = "query_public_url: an https URL without query or fragment, or \"\"."
  }
}

variable "backfill_job" {
  description = "backfill Cloud Run Job: tasks split the listing (each lists and publishes its share; the ingest service does the work)."
  type = object({
    task_count      = optional(number, 4)
    parallelism     = optional(number, 4)
    cpu             = optional(string, "1")
    memory          = optional(string, "1Gi")
    timeout_seconds = optional(number, 3600)
    max_retries     = optional(number, 3)
    env             = optional(map(string), {})
  })
  default = {}
}

variable "rebuild_job" {
  description = "rebuild Cloud Run Job: tasks build index segments from Firestore face-id ranges in parallel (HNSW builds are CPU-bound: cpu = build threads)."
  type = object({
    task_count      = optional(number, 4)
    parallelism     = optional(number, 4)
    cpu             = optional(string, "4")
    memory          = optional(string, "4Gi")
    timeout_seconds = optional(number, 3600)
    max_retries     = optional(number, 3)
    env             = optional(map(string), {})
  })
  default = {}
}
