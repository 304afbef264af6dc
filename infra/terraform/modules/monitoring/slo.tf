# SLO-style alerts on the application's own metrics (OpenTelemetry -> Cloud Monitoring as
# workload.googleapis.com/<instrument>, see shared/facesearch/telemetry/metrics.py) and on
# Pub/Sub's: upload -> searchable p95, and the oldest unacknowledged message of a pushed
# subscription (a consumer that stopped acknowledging). The 5xx ratio and the DLQ backlog
# are in main.tf. Runbooks: docs/operations.md.

locals {
  searchable_metric = "workload.googleapis.com/facesearch.upload_to_searchable.seconds"
  pushed_filter = join(" AND ", [
    "resource.type = \"pubsub_subscription\"",
    "metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\"",
    "resource.label.subscription_id = one_of(${join(", ", [for s in var.pushed_subscriptions : "\"${s}\""])})",
  ])
}

resource "google_monitoring_alert_policy" "searchable_latency" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: upload -> searchable p95 over ${var.searchable_p95_seconds}s"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels
  user_labels           = var.labels

  conditions {
    display_name = "p95 upload -> searchable > ${var.searchable_p95_seconds}s over 30 min"

    condition_threshold {
      filter          = "metric.type = \"${local.searchable_metric}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.searchable_p95_seconds
      duration        = "0s"

      aggregations {
        alignment_period     = "1800s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_PERCENTILE_95"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Uploads take longer than ${var.searchable_p95_seconds}s (p95 over 30 min) to become searchable. Look at the dashboard's message age and oldest-unacked panels (a backlog?), ingest failures by code and index commit time; runbook in docs/operations.md (\"Uploads slow to become searchable\")."
  }
}

resource "google_monitoring_alert_policy" "oldest_unacked" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: oldest unacked message over ${var.oldest_unacked_seconds}s"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels
  user_labels           = var.labels

  conditions {
    display_name = "oldest unacked message > ${var.oldest_unacked_seconds}s"

    condition_threshold {
      filter          = local.pushed_filter
      comparison      = "COMPARISON_GT"
      threshold_value = var.oldest_unacked_seconds
      duration        = "300s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_MAX"
        cross_series_reducer = "REDUCE_MAX"
        group_by_fields      = ["resource.label.subscription_id"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A pushed subscription holds a message older than ${var.oldest_unacked_seconds}s: its consumer keeps failing (5xx) or is down. Check the service's ERROR logs and `facesearch dlq list`; runbook in docs/operations.md (\"A backlog that does not drain\")."
  }
}
