# A topic with one subscription (push to a Cloud Run URL authenticated by an OIDC token,
# or pull when no endpoint is given), exponential-backoff retries, a dead-letter topic
# after max_delivery_attempts, and a pull subscription on the dead-letter topic so that
# poison messages can be inspected and replayed.

locals {
  pubsub_agent = "serviceAccount:${var.pubsub_service_agent_email}"
  push         = var.push_endpoint != null
}

resource "google_pubsub_topic" "this" {
  project                    = var.project_id
  name                       = var.name
  labels                     = var.labels
  kms_key_name               = var.kms_key_name
  message_retention_duration = var.topic_message_retention
}

resource "google_pubsub_topic" "dead_letter" {
  project                    = var.project_id
  name                       = "${var.name}-dlq"
  labels                     = var.labels
  kms_key_name               = var.kms_key_name
  message_retention_duration = var.dead_letter_retention
}

resource "google_pubsub_subscription" "this" {
  project                    = var.project_id
  name                       = local.push ? "${var.name}-push" : "${var.name}-pull"
  topic                      = google_pubsub_topic.this.id
  labels                     = var.labels
  ack_deadline_seconds       = var.ack_deadline_seconds
  message_retention_duration = var.message_retention
  enable_message_ordering    = false

  # Never expire the subscription for inactivity (an idle environment keeps its wiring).
  expiration_policy {
    ttl = ""
  }

  retry_policy {
    minimum_backoff = var.minimum_backoff
    maximum_backoff = var.maximum_backoff
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  dynamic "push_config" {
    for_each = local.push ? [var.push_endpoint] : []
    content {
      push_endpoint = push_config.value
      attributes = {
        x-goog-version = "v1"
      }
      oidc_token {
        service_account_email = var.push_service_account_email
        audience              = var.push_audience
      }
    }
  }

  lifecycle {
    precondition {
      condition     = !local.push || (var.push_service_account_email != null && var.push_audience != null)
      error_message = "A push subscription needs push_service_account_email and push_audience (OIDC auth)."
    }
  }

  # Dead-lettering only works once the Pub/Sub service agent may publish to the DLQ
  # and acknowledge on this subscription.
  depends_on = [google_pubsub_topic_iam_member.dead_letter_publisher]
}

resource "google_pubsub_subscription" "dead_letter" {
  project                    = var.project_id
  name                       = "${var.name}-dlq-pull"
  topic                      = google_pubsub_topic.dead_letter.id
  labels                     = var.labels
  ack_deadline_seconds       = 60
  message_retention_duration = var.dead_letter_retention
  retain_acked_messages      = true

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  project      = var.project_id
  subscription = google_pubsub_subscription.this.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

resource "google_pubsub_topic_iam_member" "publishers" {
  for_each = var.publishers

  project = var.project_id
  topic   = google_pubsub_topic.this.name
  role    = "roles/pubsub.publisher"
  member  = each.value
}

resource "google_pubsub_subscription_iam_member" "subscribers" {
  for_each = var.subscribers

  project      = var.project_id
  subscription = google_pubsub_subscription.this.name
  role         = "roles/pubsub.subscriber"
  member       = each.value
}
