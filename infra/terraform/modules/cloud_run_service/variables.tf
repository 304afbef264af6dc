variable "project_id" {
  description = "Project that owns the service."
  type        = string
}

variable "region" {
  description = "Cloud Run region (must offer L4 GPUs when gpu_count > 0)."
  type        = string
}

variable "name" {
  description = "Service name."
  type        = string
}

variable "description" {
  description = "Human description of the service."
  type        = string
  default     = null
}

variable "function_target" {
  description = "FUNCTION_TARGET: ingest | indexer | query | cloudinary."
  type        = string

  validation {
    condition     = contains(["ingest", "indexer", "query", "cloudinary"], var.function_target)
    error_message = "function_target must be one of ingest, indexer, query, cloudinary."
  }
}

variable "image" {
  description = "Container image (prefer an immutable digest reference)."
  type        = string
}

variable "service_account_email" {
  description = "The service's own runtime identity."
  type        = string
}

variable "env" {
  description = "Plain environment variables (the FACESEARCH_* contract); no secrets here."
  type        = map(string)
  default     = {}
}

variable "cpu" {
  description = "vCPU limit in whole or fractional vCPUs, e.g. \"1\", \"4\"."
  type        = string
  default     = "1"

  validation {
    condition     = can(regex("^[0-9]+(\\.[0-9]+)?$", var.cpu))
    error_message = "cpu must be a number of vCPUs such as 1 or 4 (no millicpu suffix)."
  }
}

variable "memory" {
  description = "Memory limit with unit Mi or Gi, e.g. \"512Mi\", \"16Gi\"."
  type        = string
  default     = "512Mi"

  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi)$", var.memory))
    error_message = "memory must look like 512Mi or 16Gi."
  }
}

variable "cpu_idle" {
  description = "Throttle CPU between requests (request-based billing). Forced false with a GPU."
  type        = bool
  default     = true
}

variable "gpu_count" {
  description = "GPUs per instance (0 = CPU only; Cloud Run allows 1)."
  type        = number
  default     = 0

  validation {
    condition     = contains([0, 1], var.gpu_count)
    error_message = "gpu_count must be 0 or 1."
  }
}

variable "gpu_type" {
  description = "node_selector accelerator."
  type        = string
  default     = "nvidia-l4"
}

variable "gpu_zonal_redundancy_disabled" {
  description = "true = no zonal redundancy for GPU instances (cheaper, smaller quota need); false = redundant."
  type        = bool
  default     = true
}

variable "min_instances" {
  description = "Warm instances kept (0 = scale to zero)."
  type        = number
  default     = 0
}

variable "max_instances" {
  description = "Upper bound on instances."
  type        = number
  default     = 3
}

variable "concurrency" {
  description = "Concurrent requests per instance."
  type        = number
  default     = 80

  validation {
    condition     = var.concurrency >= 1 && var.concurrency <= 1000
    error_message = "concurrency must be within 1..1000."
  }
}

variable "timeout_seconds" {
  description = "Request timeout (1..3600)."
  type        = number
  default     = 60

  validation {
    condition     = var.timeout_seconds >= 1 && var.timeout_seconds <= 3600
    error_message = "timeout_seconds must be within 1..3600."
  }
}

variable "ingress" {
  description = "INGRESS_TRAFFIC_ALL | INGRESS_TRAFFIC_INTERNAL_ONLY | INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER."
  type        = string
  default     = "INGRESS_TRAFFIC_INTERNAL_ONLY"

  validation {
    condition     = contains(["INGRESS_TRAFFIC_ALL", "INGRESS_TRAFFIC_INTERNAL_ONLY", "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"], var.ingress)
    error_message = "Unknown ingress setting."
  }
}

variable "startup_probe_failure_threshold" {
  description = "Startup TCP probe failures (5 s apart) tolerated before the instance is replaced."
  type        = number
  default     = 24
}

variable "deletion_protection" {
  description = "Refuse to delete the service from Terraform."
  type        = bool
  default     = true
}

variable "labels" {
  description = "Labels on the service and its revisions."
  type        = map(string)
  default     = {}
}

variable "invokers" {
  description = "Members given roles/run.invoker on this service, keyed by a static name."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for m in values(var.invokers) : !contains(["allUsers", "allAuthenticatedUsers"], m)])
    error_message = "Use var.public for a deliberately public service, not invokers."
  }
}

variable "public" {
  description = "Grant allUsers roles/run.invoker (only for endpoints that verify signatures themselves)."
  type        = bool
  default     = false
}
