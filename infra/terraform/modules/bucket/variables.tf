variable "project_id" {
  description = "Project that owns the bucket."
  type        = string
}

variable "name" {
  description = "Globally unique bucket name."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$", var.name))
    error_message = "Bucket names are 3-63 lowercase letters, digits, dots, dashes, underscores."
  }
}

variable "location" {
  description = "Bucket location (a region such as us-central1, or a multi-region)."
  type        = string
}

variable "labels" {
  description = "Labels applied to the bucket."
  type        = map(string)
  default     = {}
}

variable "versioning" {
  description = "Keep noncurrent object versions (protects objects that are rewritten in place)."
  type        = bool
  default     = false
}

variable "force_destroy" {
  description = "Allow `terraform destroy` to delete a non-empty bucket (dev only)."
  type        = bool
  default     = false
}

variable "soft_delete_retention_seconds" {
  description = "Soft-delete window for deleted objects; 0 disables it, else 604800..7776000."
  type        = number
  default     = 604800

  validation {
    condition     = var.soft_delete_retention_seconds == 0 || (var.soft_delete_retention_seconds >= 604800 && var.soft_delete_retention_seconds <= 7776000)
    error_message = "soft_delete_retention_seconds must be 0 or between 7 and 90 days."
  }
}

variable "kms_key_name" {
  description = "Optional CMEK key (projects/P/locations/L/keyRings/R/cryptoKeys/K); null = Google-managed."
  type        = string
  default     = null
}

variable "access_log_bucket" {
  description = "Optional bucket that receives usage/access logs for this bucket."
  type        = string
  default     = null
}

variable "lifecycle_rules" {
  description = "Lifecycle rules; unset conditions are omitted. action: Delete | SetStorageClass is not needed here."
  type = list(object({
    action                     = optional(string, "Delete")
    age_days                   = optional(number)
    days_since_noncurrent_time = optional(number)
    num_newer_versions         = optional(number)
    with_state                 = optional(string, "ANY")
    matches_prefix             = optional(list(string), [])
  }))
  default = []

  validation {
    condition     = alltrue([for r in var.lifecycle_rules : contains(["LIVE", "ARCHIVED", "ANY"], r.with_state)])
    error_message = "with_state must be LIVE, ARCHIVED or ANY."
  }
}

variable "iam_members" {
  description = "Bucket-level grants keyed by a static name (keys must be known at plan time)."
  type = map(object({
    role   = string
    member = string
  }))
  default = {}

  validation {
    condition     = alltrue([for b in values(var.iam_members) : !contains(["allUsers", "allAuthenticatedUsers"], b.member)])
    error_message = "Buckets are private: allUsers and allAuthenticatedUsers are refused."
  }

  validation {
    condition     = alltrue([for b in values(var.iam_members) : !contains(["roles/owner", "roles/editor", "roles/viewer", "roles/storage.admin"], b.role)])
    error_message = "Primitive roles and storage.admin are refused on buckets; use object-level roles."
  }
}
