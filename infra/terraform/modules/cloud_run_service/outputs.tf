output "name" {
  description = "Service name."
  value       = google_cloud_run_v2_service.this.name
}

output "uri" {
  description = "https:// URL of the service."
  value       = google_cloud_run_v2_service.this.uri
}

output "id" {
  description = "Full resource id."
  value       = google_cloud_run_v2_service.this.id
}
