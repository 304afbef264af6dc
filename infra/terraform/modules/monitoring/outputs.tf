output "alert_policy_ids" {
  description = "Alert policies created."
  value = {
    dead_letter_backlog = google_monitoring_alert_policy.dead_letter_backlog.name
    error_rate          = google_monitoring_alert_policy.error_rate.name
    ingest_failures     = google_monitoring_alert_policy.ingest_failures.name
    searchable_latency  = google_monitoring_alert_policy.searchable_latency.name
    oldest_unacked      = google_monitoring_alert_policy.oldest_unacked.name
  }
}

output "dashboard_id" {
  description = "The operations dashboard."
  value       = google_monitoring_dashboard.pipeline.id
}

output "ingest_failures_metric" {
  description = "Log-based metric type."
  value       = "logging.googleapis.com/user/${google_logging_metric.ingest_failures.name}"
}
