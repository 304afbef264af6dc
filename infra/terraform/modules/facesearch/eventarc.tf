# Object finalized in the uploads bucket -> ingest. Eventarc Cloud Storage triggers live in
# the bucket's location and deliver through a Pub/Sub topic the GCS agent publishes to.

resource "google_eventarc_trigger" "uploads_finalized" {
  project         = var.project_id
  name            = "${local.prefix}-uploads-finalized"
  location        = lower(local.bucket_location)
  service_account = google_service_account.eventarc.email
  labels          = local.labels

  matching_criteria {
    attribute = "type"
    value     = "google.cloud.storage.object.v1.finalized"
  }

  matching_criteria {
    attribute = "bucket"
    value     = module.uploads.name
  }

  destination {
    cloud_run_service {
      service = module.ingest.name
      region  = var.region
      path    = "/"
    }
  }

  depends_on = [
    google_project_iam_member.eventarc_receiver,
    google_project_iam_member.gcs_agent_pubsub_publisher,
    google_service_account_iam_member.pubsub_agent_token_creator,
  ]
}
