variable "project_id" {
  description = "Project that owns the topics."
  type        = string
}

variable "name" {
  description = "Topic name; the DLQ is <name>-dlq, subscriptions <name>-push|-pull and <name>-dlq-pull."
  type        = string
}

variable "labels" {
  description = "Labels on topics and subscriptions."
  type        = map(string)
  default     = {}
}

variable "pubsub_service_agent_email" {
  description = "service-<number>@gcp-sa-pubsub.iam.gserviceaccount.com (needs DLQ publish + source subscribe)."
  type        = string
}

variable "push_endpoint" {
  description = "HTTPS endpoint for a push subscription; null makes a pull subscription instead."
  type        = string
  default     = null
}

variable "push_service_account_email" {
  description = "Dedicated service account whose OIDC token authenticates each push."
  type        = string
  default     = null
}

variable "push_audience" {
  description = "OIDC audience for push (the Cloud Run service URL)."
  type        = string
  default     = null
}

variable "ack_deadline_seconds" {
  description = "How long a push may take before Pub/Sub retries it (10-600)."
  type        = number
  default     = 60

  validation {
    condition     = var.ack_deadline_seconds >= 10 && var.ack_deadline_seconds <= 600
    error_message = "ack_deadline_seconds must be within 10..600."
  }
}

variable "minimum_backoff" {
  description = "Retry backoff floor, e.g. \"10s\"."
  type        = string
  default     = "10s"
}

variable "maximum_backoff" {
  description = "Retry backoff ceiling (<= 600s)."
  type        = string
  default     = "600s"
}

variable "max_delivery_attempts" {
  description = "Deliveries before a message goes to the dead-letter topic (5-100)."
  type        = number
  default     = 10

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts must be within 5..100 (Pub/Sub limits)."
  }
}

variable "message_retention" {
  description = "How long unacked messages stay on the subscription."
  type        = string
  default     = "604800s"
}

variable "topic_message_retention" {
  description = "Topic-level retention (enables seek/replay onto new subscriptions); null = off."
  type        = string
  default     = null
}

variable "dead_letter_retention" {
  description = "Retention on the dead-letter topic and its inspection subscription."
  type        = string
  default     = "604800s"
}

variable "kms_key_name" {
  description = "Optional CMEK key for both topics; null = Google-managed encryption."
  type        = string
  default     = null
}

variable "publishers" {
  description = "Members allowed to publish to the main topic, keyed by a static name."
  type        = map(string)
  default     = {}
}

variable "subscribers" {
  description = "Members allowed to pull from the main subscription, keyed by a static name."
  type        = map(string)
  default     = {}
}
