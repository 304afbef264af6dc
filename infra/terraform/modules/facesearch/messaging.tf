# Four topics, each with a dead-letter topic + inspection subscription.
#   ingest-requests  cloudinary -> ingest   (push, OIDC as the push-ingest account);
#                    ingest -> ingest: a video's chunk tasks and its finish task (one
#                    push each, so chunks run on many instances; their dead letters land
#                    in ingest-requests-dlq with the rest)
#   face-embeddings  ingest -> indexer      (push, OIDC as the push-indexer account)
#   face-deletions   query (forgets; collection erase control messages), cloudinary
#                    (forgets), Cloud Scheduler (daily retention control message,
#                    scheduler.tf), the indexer itself (fan-out and continuations of
#                    control messages), operators -> indexer (push, OIDC as push-indexer)
#   face-events      indexer (face_added / face_removed after each index commit), ingest
#                    (video_done / video_failed) -> clusterer (push, OIDC as the
#                    push-clusterer account): persons; it acknowledges video events.
#                    Other consumers add their own subscription to the topic.
# Push endpoints end in /projects/P/topics/T: functions-framework turns a raw Pub/Sub push
# into a CloudEvent whose source names that topic, so one handler can tell them apart.

module "topic_ingest" {
  source = "../pubsub_topic"

  project_id                 = var.project_id
  labels                     = local.labels
  pubsub_service_agent_email = local.pubsub_agent
  kms_key_name               = var.kms_key_name
  minimum_backoff            = var.pubsub_minimum_backoff
  maximum_backoff            = var.pubsub_maximum_backoff
  max_delivery_attempts      = var.pubsub_max_delivery_attempts

  name                       = local.topic_names.ingest
  push_endpoint              = "${module.ingest.uri}/projects/${var.project_id}/topics/${local.topic_names.ingest}"
  push_audience              = module.ingest.uri
  push_service_account_email = google_service_account.push["ingest"].email
  ack_deadline_seconds       = min(var.ingest.timeout_seconds, 600)

  # the webhook queues uploads; ingest queues a video's chunk and finish tasks; the
  # backfill job queues an existing library
  publishers = { cloudinary = local.sa["cloudinary"], ingest = local.sa["ingest"], backfill = local.jobs_sa }

  depends_on = [google_kms_crypto_key_iam_member.cmek]
}

module "topic_embeddings" {
  source = "../pubsub_topic"

  project_id                 = var.project_id
  labels                     = local.labels
  pubsub_service_agent_email = local.pubsub_agent
  kms_key_name               = var.kms_key_name
  minimum_backoff            = var.pubsub_minimum_backoff
  maximum_backoff            = var.pubsub_maximum_backoff
  max_delivery_attempts      = var.pubsub_max_delivery_attempts

  name                       = local.topic_names.embeddings
  push_endpoint              = "${module.indexer.uri}/projects/${var.project_id}/topics/${local.topic_names.embeddings}"
  push_audience              = module.indexer.uri
  push_service_account_email = google_service_account.push["indexer"].email
  ack_deadline_seconds       = min(var.indexer.timeout_seconds, 600)

  publishers = { ingest = local.sa["ingest"] }

  depends_on = [google_kms_crypto_key_iam_member.cmek]
}

module "topic_deletions" {
  source = "../pubsub_topic"

  project_id                 = var.project_id
  labels                     = local.labels
  pubsub_service_agent_email = local.pubsub_agent
  kms_key_name               = var.kms_key_name
  minimum_backoff            = var.pubsub_minimum_backoff
  maximum_backoff            = var.pubsub_maximum_backoff
  max_delivery_attempts      = var.pubsub_max_delivery_attempts

  name                       = local.topic_names.deletions
  push_endpoint              = "${module.indexer.uri}/projects/${var.project_id}/topics/${local.topic_names.deletions}"
  push_audience              = module.indexer.uri
  push_service_account_email = google_service_account.push["indexer"].email
  ack_deadline_seconds       = min(var.indexer.timeout_seconds, 600)

  # Besides face ids to forget, this topic carries control messages (kind=control):
  #   query       forgets (DELETE /v1/images, /v1/persons) and starts a collection erase
  #               ("erase" control message);
  #   cloudinary  forgets ("delete" notifications), through the same path as query;
  #   indexer     runs erase and retention one bounded step per message and re-publishes
  #               the continuation here; it also fans the daily retention nudge out per
  #               collection, so without this grant both stall after the first step;
  #   scheduler   the Cloud Scheduler service agent: the daily retention message
  #               (scheduler.tf), only while the job exists.
  # ingest never publishes here.
  publishers = merge(
    {
      query      = local.sa["query"]
      cloudinary = local.sa["cloudinary"]
      indexer    = local.sa["indexer"]
    },
    var.retention_schedule == null && var.sweep_schedule == null ? {} : { scheduler = "serviceAccount:${local.scheduler_agent}" },
    { for k, m in var.deletion_publishers : "extra-${k}" => m },
  )

  # The Cloud Scheduler agent exists only once its API is enabled.
  depends_on = [google_kms_crypto_key_iam_member.cmek, google_project_service.apis]
}

module "topic_events" {
  source = "../pubsub_topic"

  project_id                 = var.project_id
  labels                     = local.labels
  pubsub_service_agent_email = local.pubsub_agent
  kms_key_name               = var.kms_key_name
  minimum_backoff            = var.pubsub_minimum_backoff
  maximum_backoff            = var.pubsub_maximum_backoff
  max_delivery_attempts      = var.pubsub_max_delivery_attempts

  name                       = local.topic_names.events
  topic_message_retention    = "604800s"
  push_endpoint              = "${module.clusterer.uri}/projects/${var.project_id}/topics/${local.topic_names.events}"
  push_audience              = module.clusterer.uri
  push_service_account_email = google_service_account.push["clusterer"].email
  ack_deadline_seconds       = min(var.clusterer.timeout_seconds, 600)

  # The indexer announces each commit (facesearch.indexer.service); a failed publish fails
  # the delivery, so without this grant every embeddings/deletions message is retried.
  # Ingest announces finished (or failed) videos the same way.
  publishers = { indexer = local.sa["indexer"], ingest = local.sa["ingest"] }

  depends_on = [google_kms_crypto_key_iam_member.cmek]
}
