output "id" {
  description = "projects/P/secrets/NAME (what the code reads, appending /versions/latest)."
  value       = google_secret_manager_secret.this.id
}

output "secret_id" {
  description = "Short secret name."
  value       = google_secret_manager_secret.this.secret_id
}
