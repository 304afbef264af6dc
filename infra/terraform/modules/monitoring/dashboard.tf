# One Cloud Monitoring dashboard for the pipeline and the query API: the application's
# OpenTelemetry metrics (workload.googleapis.com/facesearch.*, no collection or other ids
# in any label) beside Pub/Sub's and Cloud Run's own. Panels in reading order: is it
# keeping up (upload -> searchable, faces/s, backlog), what goes wrong (rejects, failures,
# DLQ, 5xx), the index's shape and the query side.

locals {
  app = "workload.googleapis.com/facesearch"
  subscriptions_filter = "resource.label.subscription_id = one_of(${join(", ", [
    for s in concat(var.pushed_subscriptions, var.dead_letter_subscriptions) : "\"${s}\""
  ])})"

  panels = [
    { title = "Upload -> searchable, p50 / p95 (s)", filter = "metric.type = \"${local.app}.upload_to_searchable.seconds\"", aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_95", group = [] },
    { title = "Faces stored per second", filter = "metric.type = \"${local.app}.ingest.faces\"", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group = [] },
    { title = "Images by outcome (per s)", filter = "metric.type = \"${local.app}.ingest.images\"", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group = ["metric.label.outcome"] },
    { title = "Rejected images by reason (per s)", filter = "metric.type = \"${local.app}.ingest.rejects\"", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group = ["metric.label.reason"] },
    { title = "Ingest failures (retried) by code (per s)", filter = "metric.type = \"${local.app}.ingest.failures\"", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group = ["metric.label.code"] },
    { title = "Message age when handled, p95 (s)", filter = "metric.type = \"${local.app}.message.age.seconds\"", aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_95", group = ["metric.label.topic"] },
    { title = "Oldest unacked message (s)", filter = "resource.type = \"pubsub_subscription\" AND metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND ${local.subscriptions_filter}", aligner = "ALIGN_MAX", reducer = "REDUCE_MAX", group = ["resource.label.subscription_id"] },
    { title = "Dead letters waiting", filter = "resource.type = \"pubsub_subscription\" AND metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND ${local.subscriptions_filter}", aligner = "ALIGN_MAX", reducer = "REDUCE_SUM", group = ["resource.label.subscription_id"] },
    { title = "Events dropped as too old (per s)", filter = "metric.type = \"${local.app}.events.expired\"", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group = ["metric.label.topic"] },
    { title = "Stuck images re-queued (per s)", filter = "metric.type = \"${local.app}.sweep.requeued\"", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group = [] },
    { title = "Index segments", filter = "metric.type = \"${local.app}.index.segments\"", aligner = "ALIGN_MEAN", reducer = "REDUCE_MAX", group = ["metric.label.role"] },
    { title = "Index live vectors / tombstones", filter = "metric.type = one_of(\"${local.app}.index.live\", \"${local.app}.index.tombstones\")", aligner = "ALIGN_MEAN", reducer = "REDUCE_MAX", group = ["metric.type"] },
    { title = "Index commit, p95 (s)", filter = "metric.type = \"${local.app}.index.commit.seconds\"", aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_95", group = ["metric.label.kind"] },
    { title = "Query latency p95 by route (s)", filter = "metric.type = \"${local.app}.query.seconds\"", aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_95", group = ["metric.label.route"] },
    { title = "Query requests by status (per s)", filter = "metric.type = \"${local.app}.query.seconds\"", aligner = "ALIGN_DELTA", reducer = "REDUCE_COUNT", group = ["metric.label.status"] },
    { title = "Refused to protect an instance (per s)", filter = "metric.type = \"${local.app}.query.shed\"", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group = ["metric.label.reason"] },
    { title = "Segment cache hits / misses (per s)", filter = "metric.type = \"${local.app}.cache.requests\"", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group = ["metric.label.result"] },
    { title = "Cloud Run 5xx by service (per s)", filter = "resource.type = \"cloud_run_revision\" AND metric.type = \"run.googleapis.com/request_count\" AND metric.label.response_code_class = \"5xx\" AND ${local.services_filter}", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group = ["resource.label.service_name"] },
  ]
}

resource "google_monitoring_dashboard" "pipeline" {
  project = var.project_id
  dashboard_json = jsonencode({
    displayName = "${var.name_prefix}: face search operations"
    mosaicLayout = {
      columns = 48
      tiles = [
        for i, p in local.panels : {
          xPos   = (i % 2) * 24
          yPos   = floor(i / 2) * 16
          width  = 24
          height = 16
          widget = {
            title = p.title
            xyChart = {
              dataSets = [{
                plotView = "LINE"
                timeSeriesQuery = {
                  timeSeriesFilter = {
                    filter = p.filter
                    aggregation = {
                      alignmentPeriod    = "60s"
                      perSeriesAligner   = p.aligner
                      crossSeriesReducer = p.reducer
                      groupByFields      = p.group
                    }
                  }
                }
              }]
            }
          }
        }
      ]
    }
  })
}
