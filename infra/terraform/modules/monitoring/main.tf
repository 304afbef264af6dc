# Alerts: any message waiting on a dead-letter subscription, a 5xx ratio above threshold on
# any of the environment's services, and ingest failures counted by a log-based metric.

locals {
  dlq_filter = join(" AND ", [
    "resource.type = \"pubsub_subscription\"",
    "metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\"",
    "resource.label.subscription_id = one_of(${join(", ", [for s in var.dead_letter_subscriptions : "\"${s}\""])})",
  ])

  services_filter = "resource.label.service_name = one_of(${join(", ", [for s in var.service_names : "\"${s}\""])})"

  requests_filter = join(" AND ", [
    "resource.type = \"cloud_run_revision\"",
    "metric.type = \"run.googleapis.com/request_count\"",
    local.services_filter,
  ])
}

resource "google_monitoring_alert_policy" "dead_letter_backlog" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: messages in a dead-letter queue"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels
  user_labels           = var.labels

  conditions {
    display_name = "DLQ backlog > ${var.dead_letter_threshold}"

    condition_threshold {
      filter          = local.dlq_filter
      comparison      = "COMPARISON_GT"
      threshold_value = var.dead_letter_threshold
      duration        = "${var.alert_duration_seconds}s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_MAX"
        cross_series_reducer = "REDUCE_SUM"
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
    content   = "A message exhausted its delivery attempts. Inspect it with `gcloud pubsub subscriptions pull <subscription> --limit=5` (the DLQ pull subscriptions are ${join(", ", var.dead_letter_subscriptions)}), fix the cause, then republish to the source topic. See docs/deploy.md, section Operations."
  }
}

resource "google_monitoring_alert_policy" "error_rate" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: 5xx error ratio"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels
  user_labels           = var.labels

  conditions {
    display_name = "5xx / all requests > ${var.error_rate_threshold}"

    condition_threshold {
      filter             = "${local.requests_filter} AND metric.label.response_code_class = \"5xx\""
      denominator_filter = local.requests_filter
      comparison         = "COMPARISON_GT"
      threshold_value    = var.error_rate_threshold
      duration           = "${var.alert_duration_seconds}s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }

      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
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
    content   = "More than ${var.error_rate_threshold * 100}% of requests to a facesearch service returned 5xx over ${var.alert_duration_seconds}s. Check the service's logs (severity>=ERROR) in Cloud Logging."
  }
}

# Ingest logs each failed image at severity ERROR with jsonPayload.error_type set to the
# typed error's class name (see docs/deploy.md, "Logging contract").
resource "google_logging_metric" "ingest_failures" {
  project     = var.project_id
  name        = "${replace(var.name_prefix, "-", "_")}_ingest_failures"
  description = "Images the ingest service failed to process, by error type."
  filter = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=\"${var.ingest_service_name}\"",
    "severity>=ERROR",
  ])

  label_extractors = {
    error_type = "EXTRACT(jsonPayload.error_type)"
  }

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "${var.name_prefix} ingest failures"

    labels {
      key         = "error_type"
      value_type  = "STRING"
      description = "Typed error class (InvalidImage, NoFace, ...)."
    }
  }
}

resource "google_monitoring_alert_policy" "ingest_failures" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: ingest failures"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels
  user_labels           = var.labels

  conditions {
    display_name = "ingest failures > ${var.ingest_failures_threshold} per 10 min"

    condition_threshold {
      filter          = "resource.type = \"cloud_run_revision\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.ingest_failures.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.ingest_failures_threshold
      duration        = "0s"

      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
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
    content   = "The ingest service logged more than ${var.ingest_failures_threshold} failures in 10 minutes. The metric's error_type label names the typed error."
  }
}
