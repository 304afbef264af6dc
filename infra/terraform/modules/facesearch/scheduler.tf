# Retention. Each collection may keep its faces for a limited time (retention_days in the
# collection's Firestore record); once a day, Cloud Scheduler publishes ONE control message
# to face-deletions: {"v": 1, "action": "retention", "collection": null} with attributes
# kind=control, action=retention (facesearch.storage.messages.ControlMessage). The indexer,
# which already receives face-deletions by push, fans it out into one `retention` message
# per collection that has a retention period, and sweeps each collection in bounded steps,
# re-publishing its own continuation until done (facesearch.collections.maintenance).
#
# Why Scheduler -> Pub/Sub and not an HTTP call: the indexer stays internal-only and needs
# no new endpoint, invoker grant or OIDC identity; a failed step is retried with backoff and
# dead-lettered like every other message on that topic. Collections are data, not
# infrastructure: nothing here (or anywhere in Terraform) is per collection.
#
# The job publishes as the Cloud Scheduler service agent, which is granted
# roles/pubsub.publisher on face-deletions alone (messaging.tf). retention_schedule = null
# removes the job and that grant; retention then runs only when someone publishes the same
# message by hand (docs/deploy.md, Operations).

locals {
  # Body of the daily nudge; collection = null means "every collection with a retention".
  retention_control = {
    v          = 1
    action     = "retention"
    collection = null
  }
  # Body of the stuck-image sweep (every collection).
  sweep_control = {
    v          = 1
    action     = "sweep"
    collection = null
  }
}

resource "google_cloud_scheduler_job" "retention" {
  count = var.retention_schedule == null ? 0 : 1

  project     = var.project_id
  region      = var.region
  name        = "${local.prefix}-retention"
  description = "Daily retention sweep: a retention control message on face-deletions, fanned out per collection by the indexer."
  schedule    = var.retention_schedule
  time_zone   = var.retention_time_zone

  pubsub_target {
    topic_name = module.topic_deletions.topic_id
    data       = base64encode(jsonencode(local.retention_control))
    attributes = {
      kind   = "control"
      action = "retention"
    }
  }

  # A failed publish is retried instead of skipping the day.
  retry_config {
    retry_count          = 3
    min_backoff_duration = "60s"
    max_backoff_duration = "600s"
  }

  # module.topic_deletions includes the agent's publisher grant: no run before it exists.
  depends_on = [google_project_service.apis, module.topic_deletions]
}

# The stuck-image sweep: every 10 minutes one {"v": 1, "action": "sweep", "collection": null}
# control message on face-deletions; the indexer re-queues every image that has been
# `processing` for longer than FACESEARCH_OPS_STUCK_AFTER_S (facesearch.ops.sweep).
resource "google_cloud_scheduler_job" "sweep" {
  count = var.sweep_schedule == null ? 0 : 1

  project     = var.project_id
  region      = var.region
  name        = "${local.prefix}-sweep"
  description = "Re-queue images stuck in processing: a sweep control message on face-deletions."
  schedule    = var.sweep_schedule
  time_zone   = "Etc/UTC"

  pubsub_target {
    topic_name = module.topic_deletions.topic_id
    data       = base64encode(jsonencode(local.sweep_control))
    attributes = {
      kind   = "control"
      action = "sweep"
    }
  }

  retry_config {
    retry_count          = 1
    min_backoff_duration = "30s"
    max_backoff_duration = "120s"
  }

  depends_on = [google_project_service.apis, module.topic_deletions]
}
