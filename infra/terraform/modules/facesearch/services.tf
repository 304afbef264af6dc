# The five Cloud Run services: one image, FUNCTION_TARGET per service. Environment variables
# are the FACESEARCH_* contract documented in docs/deploy.md ("Runtime contract").

locals {
  common_env = {
    FACESEARCH_ENV                = var.environment
    FACESEARCH_BACKEND            = "gcp"
    FACESEARCH_PROJECT            = var.project_id
    FACESEARCH_REGION             = var.region
    FACESEARCH_LOG_JSON           = "true"
    FACESEARCH_FIRESTORE_DATABASE = module.firestore.database_name
    FACESEARCH_UPLOADS_BUCKET     = local.bucket_names.uploads
    FACESEARCH_INDEX_URL          = "gs://${local.bucket_names.index}/${var.index_prefix}"
    FACESEARCH_CROPS_BUCKET       = local.bucket_names.crops
    FACESEARCH_INGEST_TOPIC       = local.topic_names.ingest
    FACESEARCH_EMBEDDINGS_TOPIC   = local.topic_names.embeddings
    FACESEARCH_DELETIONS_TOPIC    = local.topic_names.deletions
    FACESEARCH_EVENTS_TOPIC       = local.topic_names.events
    # OpenTelemetry: spans to Cloud Trace, metrics to Cloud Monitoring (docs/operations.md)
    FACESEARCH_TELEMETRY_TRACES             = "gcp"
    FACESEARCH_TELEMETRY_METRICS            = "gcp"
    FACESEARCH_TELEMETRY_TRACE_SAMPLE_RATIO = tostring(var.trace_sample_ratio)
  }

  # Cloudinary settings shared by the webhook (builds delivery URLs) and ingest (fetches
  # only from that cloud's delivery host). Unset values are left out: the Python settings
  # refuse an empty cloud name, which would stop the service from starting.
  cloudinary_delivery_env = {
    for k, v in {
      FACESEARCH_CLOUDINARY_CLOUD_NAME          = var.cloudinary_cloud_name
      FACESEARCH_CLOUDINARY_SECURE_DISTRIBUTION = var.cloudinary_secure_distribution
    } : k => v if v != ""
  }

  # Links in answers (crop URLs) are built from this, never from a request's Host header.
  # Cloud Run's deterministic URL unless a custom domain / load balancer is in front.
  query_public_url = coalesce(
    var.query_public_url,
    "https://${local.prefix}-query-${data.google_project.this.number}.${var.region}.run.app",
  )

  onnx_providers = {
    for name, cfg in { ingest = var.ingest, query = var.query } :
    name => cfg.gpu_count > 0 ? "CUDAExecutionProvider,CPUExecutionProvider" : "CPUExecutionProvider"
  }

  service_env = {
    ingest = merge(local.common_env, local.cloudinary_delivery_env, {
      FACESEARCH_ONNX_PROVIDERS   = local.onnx_providers.ingest
      FACESEARCH_EMBED_BATCH_SIZE = tostring(var.ingest_embed_batch_size)
      # one chunk of a video per ingest request (docs/video.md); sized to the timeout below
      FACESEARCH_VIDEO_CHUNK_S = tostring(var.video_chunk_seconds)
    }, var.ingest.env)

    indexer = merge(local.common_env, {
      FACESEARCH_INDEX_GC_GRACE_S = tostring(var.index_gc_grace_seconds)
    }, var.indexer.env)

    query = merge(local.common_env, {
      FACESEARCH_PUBLIC_URL               = local.query_public_url
      FACESEARCH_ONNX_PROVIDERS           = local.onnx_providers.query
      FACESEARCH_SIGNING_KEYS_SECRET      = module.signing_keys.id
      FACESEARCH_SIGNING_SERVICE_ACCOUNT  = google_service_account.runtime["query"].email
      FACESEARCH_SIGNED_URL_TTL_S         = tostring(var.signed_url_ttl_seconds)
      FACESEARCH_INDEX_REFRESH_INTERVAL_S = tostring(var.index_refresh_interval_seconds)
      # the web console: which verified identity the service trusts (off, iam, iap)
      FACESEARCH_CONSOLE_MODE                = var.console_access
      FACESEARCH_CONSOLE_IAP_AUDIENCE        = coalesce(var.console_audience, var.console_access == "iam" ? local.query_public_url : "none")
      FACESEARCH_CONSOLE_TRUST_FORWARDED_FOR = "true"
      FACESEARCH_CONSOLE_IMG_ORIGINS         = jsonencode(["https://storage.googleapis.com"])
      # functions-framework serves with gunicorn gthread (1 worker x THREADS threads): one
      # thread per request Cloud Run admits, so Cloud Run's concurrency is the only queue
      # (docs/api.md, Serving)
      THREADS = tostring(var.query.concurrency)
    }, var.query.env)

    cloudinary = merge(local.common_env, local.cloudinary_delivery_env, {
      FACESEARCH_CLOUDINARY_SECRET_NAME = module.cloudinary_secret.id
    }, var.cloudinary.env)

    # persons per collection (facesearch.people); the recluster job shares it (people.tf)
    clusterer = merge(local.common_env, var.clusterer.env)
  }
}

module "ingest" {
  source = "../cloud_run_service"

  project_id                    = var.project_id
  region                        = var.region
  name                          = "${local.prefix}-ingest"
  description                   = "Detect, score, align and embed faces of new images (GPU)."
  function_target               = "ingest"
  image                         = var.image
  service_account_email         = google_service_account.runtime["ingest"].email
  env                           = local.service_env.ingest
  cpu                           = var.ingest.cpu
  memory                        = var.ingest.memory
  gpu_count                     = var.ingest.gpu_count
  gpu_type                      = var.gpu_type
  gpu_zonal_redundancy_disabled = var.gpu_zonal_redundancy_disabled
  min_instances                 = var.ingest.min_instances
  max_instances                 = var.ingest.max_instances
  concurrency                   = var.ingest.concurrency
  timeout_seconds               = var.ingest.timeout_seconds
  ingress                       = var.ingest.ingress
  deletion_protection           = var.deletion_protection
  labels                        = local.labels

  invokers = {
    pubsub-push = "serviceAccount:${google_service_account.push["ingest"].email}"
    eventarc    = "serviceAccount:${google_service_account.eventarc.email}"
  }
}

module "indexer" {
  source = "../cloud_run_service"

  project_id            = var.project_id
  region                = var.region
  name                  = "${local.prefix}-indexer"
  description           = "Append embeddings / tombstones to the segmented USearch index."
  function_target       = "indexer"
  image                 = var.image
  service_account_email = google_service_account.runtime["indexer"].email
  env                   = local.service_env.indexer
  cpu                   = var.indexer.cpu
  memory                = var.indexer.memory
  min_instances         = var.indexer.min_instances
  max_instances         = var.indexer.max_instances
  concurrency           = var.indexer.concurrency
  timeout_seconds       = var.indexer.timeout_seconds
  ingress               = var.indexer.ingress
  deletion_protection   = var.deletion_protection
  labels                = local.labels

  invokers = {
    pubsub-push = "serviceAccount:${google_service_account.push["indexer"].email}"
  }
}

module "query" {
  source = "../cloud_run_service"

  project_id                    = var.project_id
  region                        = var.region
  name                          = "${local.prefix}-query"
  description                   = "HMAC-signed search/match API."
  function_target               = "query"
  image                         = var.image
  service_account_email         = google_service_account.runtime["query"].email
  env                           = local.service_env.query
  cpu                           = var.query.cpu
  memory                        = var.query.memory
  gpu_count                     = var.query.gpu_count
  gpu_type                      = var.gpu_type
  gpu_zonal_redundancy_disabled = var.gpu_zonal_redundancy_disabled
  min_instances                 = var.query.min_instances
  max_instances                 = var.query.max_instances
  concurrency                   = var.query.concurrency
  timeout_seconds               = var.query.timeout_seconds
  ingress                       = var.query.ingress
  deletion_protection           = var.deletion_protection
  labels                        = local.labels
  invokers                      = var.query_invokers
  public                        = var.query_public
}

module "cloudinary" {
  source = "../cloud_run_service"

  project_id            = var.project_id
  region                = var.region
  name                  = "${local.prefix}-cloudinary"
  description           = "Cloudinary upload webhook: verify signature, dedupe, queue."
  function_target       = "cloudinary"
  image                 = var.image
  service_account_email = google_service_account.runtime["cloudinary"].email
  env                   = local.service_env.cloudinary
  cpu                   = var.cloudinary.cpu
  memory                = var.cloudinary.memory
  min_instances         = var.cloudinary.min_instances
  max_instances         = var.cloudinary.max_instances
  concurrency           = var.cloudinary.concurrency
  timeout_seconds       = var.cloudinary.timeout_seconds
  ingress               = var.cloudinary.ingress
  deletion_protection   = var.deletion_protection
  labels                = local.labels
  # Cloudinary cannot present a Google identity token: the webhook is reachable by anyone
  # and authenticates each call by its X-Cld-Signature (API secret) instead.
  public = var.cloudinary_public
}

module "clusterer" {
  source = "../cloud_run_service"

  project_id            = var.project_id
  region                = var.region
  name                  = "${local.prefix}-clusterer"
  description           = "Cluster faces into persons as face-events arrive (CPU)."
  function_target       = "clusterer"
  image                 = var.image
  service_account_email = google_service_account.runtime["clusterer"].email
  env                   = local.service_env.clusterer
  cpu                   = var.clusterer.cpu
  memory                = var.clusterer.memory
  min_instances         = var.clusterer.min_instances
  max_instances         = var.clusterer.max_instances
  concurrency           = var.clusterer.concurrency
  timeout_seconds       = var.clusterer.timeout_seconds
  ingress               = var.clusterer.ingress
  deletion_protection   = var.deletion_protection
  labels                = local.labels

  invokers = {
    pubsub-push = "serviceAccount:${google_service_account.push["clusterer"].email}"
  }
}
