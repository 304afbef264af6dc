# Batch jobs (issue 16): `facesearch backfill` and `facesearch rebuild` as Cloud Run Jobs.
# Each execution runs task_count tasks; every task reads CLOUD_RUN_TASK_INDEX /
# CLOUD_RUN_TASK_COUNT and takes its share (backfill: a stable hash of each listed object
# name; rebuild: a face-id range), so tasks never coordinate. Both checkpoint in the index
# bucket (jobs/<run>/...), so a retried task resumes where it stopped.
#
#   backfill  lists gs://<uploads>[/PREFIX] and publishes ingest-requests in batches; the
#             ingest service (push) does the work, scaled by Pub/Sub. Another source:
#             gcloud run jobs execute <prefix>-backfill --args=backfill,gs://BUCKET/PREFIX
#             (that bucket must grant the jobs account objectViewer).
#   rebuild   rebuilds the index from Firestore; tasks upload segments, the last one to
#             finish swaps the manifest (CAS). All tasks of an execution share its run id
#             (CLOUD_RUN_EXECUTION).
#
# One identity for both (jobs): list + read uploads, publish ingest-requests, read/write
# the index bucket, Firestore on this database only. The image's entrypoint serves
# functions; a job runs the `facesearch` console script instead.

locals {
  jobs_sa = "serviceAccount:${google_service_account.jobs.email}"

  jobs = {
    backfill = {
      description = "List an uploads prefix and publish ingest requests (resumable, sharded)."
      args        = ["backfill", "gs://${local.bucket_names.uploads}", "--no-progress"]
      cfg         = var.backfill_job
    }
    rebuild = {
      description = "Rebuild the index from Firestore in parallel tasks; atomic manifest switch."
      args        = ["rebuild", "--no-progress"]
      cfg         = var.rebuild_job
    }
  }
}

resource "google_service_account" "jobs" {
  project      = var.project_id
  account_id   = "${local.sa_prefix}-jobs"
  display_name = "facesearch ${var.environment} batch jobs (backfill, rebuild)"
  description  = "Runtime identity of the Cloud Run Jobs; grants in infra/terraform/modules/facesearch/jobs.tf and storage.tf."

  depends_on = [google_project_service.apis]
}

# Firestore: rebuild reads faces/, backfill reads images/ (skip what is ingested).
resource "google_project_iam_member" "jobs_firestore_user" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = local.jobs_sa

  condition {
    title       = local.firestore_condition.title
    description = local.firestore_condition.description
    expression  = local.firestore_condition.expression
  }
}

resource "google_cloud_run_v2_job" "this" {
  for_each = local.jobs

  project             = var.project_id
  location            = var.region
  name                = "${local.prefix}-${each.key}"
  deletion_protection = var.deletion_protection
  labels              = merge(local.labels, { job = each.key })

  template {
    task_count  = each.value.cfg.task_count
    parallelism = each.value.cfg.parallelism
    labels      = merge(local.labels, { job = each.key })

    template {
      service_account       = google_service_account.jobs.email
      timeout               = "${each.value.cfg.timeout_seconds}s"
      max_retries           = each.value.cfg.max_retries
      execution_environment = "EXECUTION_ENVIRONMENT_GEN2"

      containers {
        name    = each.key
        image   = var.image
        command = ["/opt/venv/bin/facesearch"]
        args    = each.value.args

        resources {
          limits = { cpu = each.value.cfg.cpu, memory = each.value.cfg.memory }
        }

        dynamic "env" {
          for_each = merge(local.common_env, {
            FACESEARCH_INDEX_BUILD_THREADS = each.value.cfg.cpu
          }, each.value.cfg.env)
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
