variable "project_id" {
  description = "Project whose metrics are watched."
  type        = string
}

variable "name_prefix" {
  description = "Prefix for display names and the log metric (e.g. facesearch-dev)."
  type        = string
}

variable "labels" {
  description = "User labels on the alert policies."
  type        = map(string)
  default     = {}
}

variable "notification_channels" {
  description = "Monitoring notification channel ids (projects/P/notificationChannels/N)."
  type        = list(string)
  default     = []
}

variable "dead_letter_subscriptions" {
  description = "Pull subscriptions on the dead-letter topics."
  type        = list(string)

  validation {
    condition     = length(var.dead_letter_subscriptions) > 0
    error_message = "At least one dead-letter subscription to watch."
  }
}

variable "service_names" {
  description = "Cloud Run services whose 5xx ratio is watched."
  type        = list(string)
}

variable "ingest_service_name" {
  description = "The ingest service (source of the failure log metric)."
  type        = string
}

variable "dead_letter_threshold" {
  description = "Alert when more than this many messages wait in any DLQ."
  type        = number
  default     = 0
}

variable "error_rate_threshold" {
  description = "Alert when the 5xx ratio exceeds this fraction (0..1)."
  type        = number
  default     = 0.05

  validation {
    condition     = var.error_rate_threshold > 0 && var.error_rate_threshold < 1
    error_message = "error_rate_threshold is a fraction between 0 and 1."
  }
}

variable "ingest_failures_threshold" {
  description = "Alert when ingest logs more failures than this in 10 minutes."
  type        = number
  default     = 10
}

variable "alert_duration_seconds" {
  description = "How long a condition must hold before the alert fires."
  type        = number
  default     = 300
}

variable "pushed_subscriptions" {
  description = "The push subscriptions whose oldest unacknowledged message is watched."
  type        = list(string)
}

variable "searchable_p95_seconds" {
  description = "SLO: upload -> searchable p95 (seconds) above which the alert fires."
  type        = number
  default     = 120
}

variable "oldest_unacked_seconds" {
  description = "Oldest unacknowledged message age (seconds) above which the alert fires."
  type        = number
  default     = 900
}
