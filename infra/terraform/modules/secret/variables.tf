variable "project_id" {
  description = "Project that owns the secret."
  type        = string
}

variable "secret_id" {
  description = "Secret name."
  type        = string
}

variable "labels" {
  description = "Labels on the secret."
  type        = map(string)
  default     = {}
}

variable "deletion_protection" {
  description = "Refuse to delete the secret from Terraform."
  type        = bool
  default     = true
}

variable "kms_key_name" {
  description = "Optional CMEK key for the replicas; null = Google-managed."
  type        = string
  default     = null
}

variable "value" {
  description = "Secret payload, written write-only (never stored in state). Ephemeral."
  type        = string
  default     = null
  sensitive   = true
  ephemeral   = true
}

variable "value_version" {
  description = "0 = Terraform manages no version (set it with gcloud); N > 0 = write `value`; bump N to rotate."
  type        = number
  default     = 0
}

variable "accessors" {
  description = "Members given secretAccessor on this secret only, keyed by a static name."
  type        = map(string)
  default     = {}
}
