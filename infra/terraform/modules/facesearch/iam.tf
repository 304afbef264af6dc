# Identities and least-privilege grants. No primitive roles; project-level grants are only
# (a) Firestore access conditioned on this environment's database, (b) the Eventarc event
# receiver role, (c) the GCS service agent's Pub/Sub publisher role that Eventarc
# Cloud Storage triggers require, and (d) the runtime identities' telemetry writers (Cloud
# Trace agent, Monitoring metric writer: write-only roles that exist only project-wide). Everything else is granted on the resource itself
# (buckets: storage.tf; topics: messaging.tf; secrets: secrets.tf), including the two custom
# roles defined here (crop_deleter, collection_eraser), which are granted on the crops bucket
# only. Collections need no grants of their own: every grant covers all of them.

resource "google_service_account" "runtime" {
  for_each = toset(["ingest", "indexer", "query", "cloudinary", "clusterer"])

  project      = var.project_id
  account_id   = "${local.sa_prefix}-${each.key}"
  display_name = "facesearch ${var.environment} ${each.key} (Cloud Run runtime)"
  description  = "Runtime identity of the ${each.key} service; grants in infra/terraform/modules/facesearch/iam.tf."

  depends_on = [google_project_service.apis]
}

# Dedicated identities whose OIDC tokens authenticate Pub/Sub pushes and Eventarc deliveries.
resource "google_service_account" "push" {
  for_each = toset(["ingest", "indexer", "clusterer"])

  project      = var.project_id
  account_id   = "${local.sa_prefix}-push-${each.key}"
  display_name = "facesearch ${var.environment} Pub/Sub push to ${each.key}"
  description  = "Signs OIDC tokens for Pub/Sub push deliveries to the ${each.key} service."

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "eventarc" {
  project      = var.project_id
  account_id   = "${local.sa_prefix}-eventarc"
  display_name = "facesearch ${var.environment} Eventarc trigger"
  description  = "Identity of the uploads-finalized Eventarc trigger (invokes ingest)."

  depends_on = [google_project_service.apis]
}

locals {
  sa = { for k, v in google_service_account.runtime : k => "serviceAccount:${v.email}" }

  firestore_condition = {
    title       = "only-${local.prefix}-database"
    description = "Firestore access limited to this environment's database."
    expression  = "resource.name == \"projects/${var.project_id}/databases/${module.firestore.database_name}\""
  }
}

# --- Firestore: ingest (images/, faces/), query (reads + nonces/, collection records),
# cloudinary (dedupe ledger), indexer (collection erase and retention delete a collection's
# records and its Cloudinary ledger entries; collections/<id>/... included), clusterer
# (persons, their faces, the correction log; reads face records; the recluster job runs
# as the clusterer too) ---------------------------------------------------------------
resource "google_project_iam_member" "firestore_user" {
  for_each = toset(["ingest", "query", "cloudinary", "indexer", "clusterer"])

  project = var.project_id
  role    = "roles/datastore.user"
  member  = local.sa[each.key]

  condition {
    title       = local.firestore_condition.title
    description = local.firestore_condition.description
    expression  = local.firestore_condition.expression
  }
}

# --- Eventarc: the trigger identity receives events and may invoke ingest only ------------
resource "google_project_iam_member" "eventarc_receiver" {
  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = "serviceAccount:${google_service_account.eventarc.email}"
}

# --- telemetry: spans to Cloud Trace, metrics to Cloud Monitoring (write-only roles) -----
resource "google_project_iam_member" "trace_agent" {
  for_each = local.sa

  project = var.project_id
  role    = "roles/cloudtrace.agent"
  member  = each.value
}

resource "google_project_iam_member" "metric_writer" {
  for_each = local.sa

  project = var.project_id
  role    = "roles/monitoring.metricWriter"
  member  = each.value
}

resource "google_project_iam_member" "gcs_agent_pubsub_publisher" {
  project = var.project_id
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${local.gcs_agent}"
}

# Pub/Sub mints the OIDC tokens for push (and Eventarc's subscription) as these accounts;
# projects created before 2021-04-08 need this explicit grant to the Pub/Sub agent.
resource "google_service_account_iam_member" "pubsub_agent_token_creator" {
  for_each = merge(
    { for k, v in google_service_account.push : "push-${k}" => v.name },
    { eventarc = google_service_account.eventarc.name },
  )

  service_account_id = each.value
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${local.pubsub_agent}"
}

# --- query signs V4 URLs for crops through IAM signBlob on its own account (no key file) ---
resource "google_service_account_iam_member" "query_signs_as_itself" {
  service_account_id = google_service_account.runtime["query"].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.sa["query"]
}

# --- forget path: query (DELETE /v1/images, /v1/persons) and cloudinary ("delete"
# notifications) delete face crops. No predefined role grants delete without also granting
# create/overwrite, so this custom role holds storage.objects.delete alone; it is granted on
# the crops bucket only (storage.tf). IAM soft-deletes custom roles: re-creating the role
# within 7 days of a destroy undeletes it; between day 7 and 37 its id cannot be reused.
resource "google_project_iam_custom_role" "crop_deleter" {
  project     = var.project_id
  role_id     = "${replace(local.prefix, "-", "_")}_crop_deleter"
  title       = "facesearch ${var.environment} crop deleter"
  description = "Delete face crops (forget path of query and cloudinary); granted on the crops bucket only."
  permissions = ["storage.objects.delete"]
  stage       = "GA"

  depends_on = [google_project_service.apis]
}

# --- collection erase and retention: the indexer lists a collection's crops (prefix
# collections/<id>/) and deletes them, and retention deletes expired images' crops. Like
# crop_deleter it holds no storage.objects.get/create: the indexer can neither read a face
# crop nor write one. Granted on the crops bucket only (storage.tf). The indexer's
# roles/storage.objectUser on the index bucket already covers listing and deleting a
# collection's index objects, noncurrent versions included.
resource "google_project_iam_custom_role" "collection_eraser" {
  project     = var.project_id
  role_id     = "${replace(local.prefix, "-", "_")}_collection_eraser"
  title       = "facesearch ${var.environment} collection eraser"
  description = "List and delete face crops (indexer: collection erase, retention); granted on the crops bucket only."
  permissions = ["storage.objects.delete", "storage.objects.list"]
  stage       = "GA"

  depends_on = [google_project_service.apis]
}

# --- image pushers (CI / Cloud Build) ---------------------------------------------------
resource "google_artifact_registry_repository_iam_member" "pushers" {
  for_each = var.image_pushers

  project    = var.project_id
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.writer"
  member     = each.value
}

# --- CMEK: service agents that encrypt our buckets and topics -------------------------------
resource "google_kms_crypto_key_iam_member" "cmek" {
  for_each = var.kms_key_name == null ? {} : {
    gcs    = "serviceAccount:${local.gcs_agent}"
    pubsub = "serviceAccount:${local.pubsub_agent}"
  }

  crypto_key_id = var.kms_key_name
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = each.value
}
