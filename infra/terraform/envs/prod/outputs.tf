output "service_urls" {
  description = "Cloud Run service URLs."
  value       = module.facesearch.service_urls
}

output "query_url" {
  description = "Base URL for `facesearch search --remote`."
  value       = module.facesearch.service_urls.query
}

output "cloudinary_webhook_url" {
  description = "Set as the notification URL in Cloudinary."
  value       = module.facesearch.cloudinary_webhook_url
}

output "buckets" {
  description = "Bucket names (upload photos to buckets.uploads)."
  value       = module.facesearch.buckets
}

output "topics" {
  description = "Pub/Sub topics."
  value       = module.facesearch.topics
}

output "dead_letter_subscriptions" {
  description = "DLQ pull subscriptions."
  value       = module.facesearch.dead_letter_subscriptions
}

output "service_accounts" {
  description = "Service account emails."
  value       = module.facesearch.service_accounts
}

output "secrets" {
  description = "Secret names to add versions to."
  value       = module.facesearch.secrets
}

output "artifact_registry" {
  description = "Where to push the image."
  value       = module.facesearch.artifact_registry
}

output "firestore_database" {
  description = "Firestore database id."
  value       = module.facesearch.firestore_database
}

output "runtime_env" {
  description = "FACESEARCH_* settings of this environment."
  value       = module.facesearch.runtime_env
}
