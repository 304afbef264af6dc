module "monitoring" {
  source = "../monitoring"

  project_id                = var.project_id
  name_prefix               = local.prefix
  labels                    = local.labels
  notification_channels     = var.notification_channels
  error_rate_threshold      = var.error_rate_threshold
  ingest_failures_threshold = var.ingest_failures_threshold
  ingest_service_name       = module.ingest.name
  searchable_p95_seconds    = var.searchable_p95_seconds
  oldest_unacked_seconds    = var.oldest_unacked_seconds

  service_names = [
    module.ingest.name,
    module.indexer.name,
    module.query.name,
    module.cloudinary.name,
    module.clusterer.name,
  ]

  pushed_subscriptions = [
    module.topic_ingest.subscription_name,
    module.topic_embeddings.subscription_name,
    module.topic_deletions.subscription_name,
  ]

  dead_letter_subscriptions = [
    module.topic_ingest.dead_letter_subscription_name,
    module.topic_embeddings.dead_letter_subscription_name,
    module.topic_deletions.dead_letter_subscription_name,
    module.topic_events.dead_letter_subscription_name,
  ]

  depends_on = [google_project_service.apis]
}
