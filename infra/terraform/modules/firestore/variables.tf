variable "project_id" {
  description = "Project that owns the database."
  type        = string
}

variable "database_name" {
  description = "Database id: \"(default)\" or a named database (one environment per project recommended)."
  type        = string
  default     = "(default)"
}

variable "location_id" {
  description = "Firestore location: a region (us-central1) or multi-region (nam5, eur3)."
  type        = string
}

variable "point_in_time_recovery" {
  description = "Keep 7 days of point-in-time recovery."
  type        = bool
  default     = false
}

variable "deletion_protection" {
  description = "Refuse deletion, and abandon (not delete) the database on `terraform destroy`."
  type        = bool
  default     = true
}

variable "kms_key_name" {
  description = "Optional CMEK key; null = Google-managed encryption."
  type        = string
  default     = null
}

variable "composite_indexes" {
  description = "Composite indexes keyed by a static name; fields in query order (ASCENDING|DESCENDING)."
  type = map(object({
    collection = string
    fields = list(object({
      field_path = string
      order      = string
    }))
  }))

  validation {
    condition     = alltrue(flatten([for i in values(var.composite_indexes) : [for f in i.fields : contains(["ASCENDING", "DESCENDING"], f.order)]]))
    error_message = "Index field order must be ASCENDING or DESCENDING."
  }

  validation {
    condition     = alltrue([for i in values(var.composite_indexes) : length(i.fields) >= 2])
    error_message = "A composite index needs at least two fields (single-field indexes are automatic)."
  }
}

variable "ttl_fields" {
  description = "TTL policies keyed by a static name: documents are deleted after the timestamp in `field`."
  type = map(object({
    collection = string
    field      = string
  }))
  default = {}
}
