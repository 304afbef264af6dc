# facesearch: the whole system in one project/environment.
#   uploads bucket --(Eventarc finalize)--> ingest (GPU) --> Firestore, crops bucket
#   cloudinary webhook --(Pub/Sub ingest-requests)--> ingest
#   ingest --(Pub/Sub face-embeddings)--> indexer --> index bucket
#   indexer --(Pub/Sub face-events)--> clusterer --> persons in Firestore (recluster: a Job)
#   client --(HMAC-signed HTTPS)--> query --> index + crops buckets, Firestore
#   query / cloudinary forget, query collection erase, Cloud Scheduler daily retention
#     --(Pub/Sub face-deletions)--> indexer (scheduler.tf)
# Collections (many independent face collections per deployment) are data, not
# infrastructure: each lives under collections/<id>/ in Firestore, below the index prefix in
# the index bucket, and in the crops bucket (the default collection at the top level);
# nothing here is per collection.
# Every service runs as its own service account with only the grants listed in iam.tf.

locals {
  prefix    = "${var.name_prefix}-${var.environment}"
  sa_prefix = "fs-${var.environment}"

  labels = merge(var.labels, {
    app        = var.name_prefix
    env        = var.environment
    managed-by = "terraform"
  })

  bucket_location = coalesce(var.bucket_location, upper(var.region))

  bucket_names = merge({
    uploads = "${var.project_id}-${local.prefix}-uploads"
    index   = "${var.project_id}-${local.prefix}-index"
    crops   = "${var.project_id}-${local.prefix}-crops"
  }, var.bucket_names)

  topic_names = {
    ingest     = "${local.prefix}-ingest-requests"
    embeddings = "${local.prefix}-face-embeddings"
    deletions  = "${local.prefix}-face-deletions"
    events     = "${local.prefix}-face-events"
  }

  pubsub_agent = "service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  gcs_agent    = data.google_storage_project_service_account.this.email_address
  # Cloud Scheduler publishes the daily retention message as this agent (scheduler.tf).
  scheduler_agent = "service-${data.google_project.this.number}@gcp-sa-cloudscheduler.iam.gserviceaccount.com"

  apis = toset([
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudscheduler.googleapis.com",
    "eventarc.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ])
}

data "google_project" "this" {
  project_id = var.project_id
}

resource "google_project_service" "apis" {
  for_each = var.enable_apis ? local.apis : toset([])

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

# The GCS service agent (also creates the identity if the project never used GCS).
data "google_storage_project_service_account" "this" {
  project = var.project_id

  depends_on = [google_project_service.apis]
}
