output "service_urls" {
  description = "Cloud Run service URLs."
  value = {
    ingest     = module.ingest.uri
    indexer    = module.indexer.uri
    query      = module.query.uri
    cloudinary = module.cloudinary.uri
    clusterer  = module.clusterer.uri
  }
}

output "cloudinary_webhook_url" {
  description = "Notification URL to configure in Cloudinary (Settings > Webhook notifications)."
  value       = module.cloudinary.uri
}

output "buckets" {
  description = "Bucket names."
  value = {
    uploads = module.uploads.name
    index   = module.index.name
    crops   = module.crops.name
  }
}

output "index_url" {
  description = "FACESEARCH_INDEX_URL."
  value       = local.common_env.FACESEARCH_INDEX_URL
}

output "topics" {
  description = "Topic names (each has <name>-dlq and <name>-dlq-pull)."
  value = {
    ingest_requests = module.topic_ingest.topic_name
    face_embeddings = module.topic_embeddings.topic_name
    face_deletions  = module.topic_deletions.topic_name
    face_events     = module.topic_events.topic_name
  }
}

output "dead_letter_subscriptions" {
  description = "Pull subscriptions for inspecting dead-lettered messages."
  value = [
    module.topic_ingest.dead_letter_subscription_name,
    module.topic_embeddings.dead_letter_subscription_name,
    module.topic_deletions.dead_letter_subscription_name,
    module.topic_events.dead_letter_subscription_name,
  ]
}

output "service_accounts" {
  description = "Runtime, push and trigger identities."
  value = merge(
    { for k, v in google_service_account.runtime : k => v.email },
    { for k, v in google_service_account.push : "push-${k}" => v.email },
    { eventarc = google_service_account.eventarc.email },
  )
}

output "secrets" {
  description = "Secret resource names (add versions with gcloud; see docs/deploy.md)."
  value = {
    signing_keys          = module.signing_keys.id
    cloudinary_api_secret = module.cloudinary_secret.id
  }
}

output "artifact_registry" {
  description = "Docker repository path: push the image as <this>/facesearch:<tag>."
  value       = "${google_artifact_registry_repository.images.location}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "firestore_database" {
  description = "Firestore database id."
  value       = module.firestore.database_name
}

output "runtime_env" {
  description = "The FACESEARCH_* values shared by all services (for local CLI use against this environment)."
  value       = local.common_env
}

output "recluster_job" {
  description = "Cloud Run Job that re-clusters every active collection (gcloud run jobs execute <this>)."
  value       = google_cloud_run_v2_job.recluster.name
}
