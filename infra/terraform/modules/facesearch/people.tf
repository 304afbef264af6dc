# Persons (facesearch.people). Day to day the clusterer service keeps them current from
# face-events (messaging.tf: push subscription with a dead-letter topic, services.tf). This
# Cloud Run Job is the full re-cluster, run by hand after a parameter or model change
# (`gcloud run jobs execute <prefix>-recluster`, optionally with collection ids as args):
# it re-clusters every active collection from its face records, keeping person ids and
# names. Same image; the entrypoint runs `python -m facesearch.people.jobs` for
# FUNCTION_TARGET=recluster. It runs as the clusterer's account (Firestore, index read).

resource "google_cloud_run_v2_job" "recluster" {
  project             = var.project_id
  location            = var.region
  name                = "${local.prefix}-recluster"
  labels              = local.labels
  deletion_protection = var.deletion_protection

  template {
    labels      = local.labels
    task_count  = 1
    parallelism = 1

    template {
      service_account = google_service_account.runtime["clusterer"].email
      timeout         = "${var.recluster_job.timeout_seconds}s"
      max_retries     = 1

      containers {
        image = var.image

        resources {
          limits = {
            cpu    = var.recluster_job.cpu
            memory = var.recluster_job.memory
          }
        }

        dynamic "env" {
          for_each = merge(local.service_env.clusterer, { FUNCTION_TARGET = "recluster" })
          content {
            name  = env.key
            value = env.value
          }
        }
      }
    }
  }

  depends_on = [google_project_service.apis]
}
