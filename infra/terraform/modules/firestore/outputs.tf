output "database_name" {
  description = "Database id the code connects to."
  value       = google_firestore_database.this.name
}

output "database_id" {
  description = "projects/P/databases/NAME."
  value       = google_firestore_database.this.id
}
