module "firestore" {
  source = "../firestore"

  project_id             = var.project_id
  database_name          = var.firestore_database_name
  location_id            = coalesce(var.firestore_location, var.region)
  point_in_time_recovery = var.firestore_point_in_time_recovery
  deletion_protection    = var.deletion_protection
  composite_indexes      = var.firestore_composite_indexes

  ttl_fields = {
    nonces = {
      collection = "nonces"
      field      = "expires_at"
    }
    cloudinary-events = {
      collection = "cloudinary_events"
      field      = "expires_at"
    }
  }

  depends_on = [google_project_service.apis]
}
