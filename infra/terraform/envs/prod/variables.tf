variable "project_id" {
  description = "Google Cloud project of this environment."
  type        = string
}

variable "region" {
  description = "Region with Cloud Run L4 GPUs (e.g. us-central1, europe-west1, europe-west4, asia-southeast1)."
  type        = string
  default     = "us-central1"
}

variable "image" {
  description = "Function image reference, ideally by digest (output artifact_registry + /facesearch@sha256:...)."
  type        = string
}

variable "query_public" {
  description = "Expose the query API to the internet (every route but /healthz still requires an HMAC signature)."
  type        = bool
  default     = true
}

variable "query_invokers" {
  description = "Members allowed to invoke query when query_public = false."
  type        = map(string)
  default     = {}
}

variable "uploaders" {
  description = "Members allowed to upload photos into the uploads bucket."
  type        = map(string)
  default     = {}
}

variable "image_pushers" {
  description = "Members allowed to push images (e.g. the Cloud Build service account)."
  type        = map(string)
  default     = {}
}

variable "notification_channels" {
  description = "Monitoring notification channels for alerts."
  type        = list(string)
  default     = []
}

variable "cloudinary_cloud_name" {
  description = "Cloudinary cloud name."
  type        = string
  default     = ""
}

variable "cloudinary_secure_distribution" {
  description = "Optional custom Cloudinary delivery host (private CDN CNAME); \"\" = res.cloudinary.com."
  type        = string
  default     = ""
}

variable "cloudinary_api_secret" {
  description = "Cloudinary API secret, only with cloudinary_api_secret_version > 0 (pass as TF_VAR_cloudinary_api_secret; never stored in state)."
  type        = string
  default     = null
  sensitive   = true
  ephemeral   = true
}

variable "cloudinary_api_secret_version" {
  description = "0 = set the secret with gcloud; N > 0 = write var.cloudinary_api_secret; bump N to rotate."
  type        = number
  default     = 0
}

variable "signing_keys" {
  description = "HMAC keys JSON {\"key_id\": \"secret\"}, only with signing_keys_version > 0 (TF_VAR_signing_keys; never stored in state)."
  type        = string
  default     = null
  sensitive   = true
  ephemeral   = true
}

variable "signing_keys_version" {
  description = "0 = set the keys with gcloud; N > 0 = write var.signing_keys; bump N to rotate."
  type        = number
  default     = 0
}

variable "ingest_max_instances" {
  description = "Upper bound of GPU ingest instances (needs that much L4 quota in the region)."
  type        = number
  default     = 4
}

variable "query_gpu" {
  description = "Run query on an L4 GPU too (4 vCPU / 16Gi) instead of CPU."
  type        = bool
  default     = false
}
