# uploads: watched by Eventarc; ingest reads it (uploaders: objectCreator). Versioned so an
#          overwritten or deleted original stays recoverable for uploads_noncurrent_days.
# index:   USearch segments + manifest.json; indexer writes, query reads. Versioned so an
#          overwritten manifest or a retired segment survives the grace period; a
#          collection erase deletes the collection's objects, noncurrent versions included.
# crops:   face thumbnails written by ingest, served by query through V4 signed URLs,
#          deleted by the forget path (query, cloudinary: storage.objects.delete only) and by
#          the indexer's collection erase and retention (list + delete only, no read/write).
# A collection's objects live under collections/<id>/ (below the index prefix in the index
# bucket); every grant here covers all collections.

module "uploads" {
  source = "../bucket"

  project_id                    = var.project_id
  name                          = local.bucket_names.uploads
  location                      = local.bucket_location
  labels                        = local.labels
  force_destroy                 = var.force_destroy_buckets
  kms_key_name                  = var.kms_key_name
  access_log_bucket             = var.access_log_bucket
  soft_delete_retention_seconds = var.soft_delete_retention_seconds
  versioning                    = true

  lifecycle_rules = concat(
    [{ days_since_noncurrent_time = var.uploads_noncurrent_days, with_state = "ARCHIVED" }],
    var.uploads_ttl_days == null ? [] : [{ age_days = var.uploads_ttl_days }],
  )

  iam_members = merge(
    { ingest-read = { role = "roles/storage.objectViewer", member = local.sa["ingest"] } },
    { jobs-read = { role = "roles/storage.objectViewer", member = local.jobs_sa } },
    { for k, m in var.uploaders : "uploader-${k}" => { role = "roles/storage.objectCreator", member = m } },
  )

  depends_on = [google_kms_crypto_key_iam_member.cmek]
}

module "index" {
  source = "../bucket"

  project_id                    = var.project_id
  name                          = local.bucket_names.index
  location                      = local.bucket_location
  labels                        = local.labels
  force_destroy                 = var.force_destroy_buckets
  kms_key_name                  = var.kms_key_name
  access_log_bucket             = var.access_log_bucket
  soft_delete_retention_seconds = var.soft_delete_retention_seconds
  versioning                    = true

  lifecycle_rules = [
    # The indexer's GC deletes retired segments after FACESEARCH_INDEX_GC_GRACE_S; with
    # versioning they (and replaced manifests) stay recoverable as noncurrent versions for
    # the grace period, then they are removed for good.
    { days_since_noncurrent_time = var.index_grace_period_days, with_state = "ARCHIVED" },
    # The manifest is rewritten on every append: bound its history.
    { num_newer_versions = var.index_manifest_versions_kept, with_state = "ARCHIVED" },
  ]

  iam_members = {
    indexer-rw = { role = "roles/storage.objectUser", member = local.sa["indexer"] }
    query-read = { role = "roles/storage.objectViewer", member = local.sa["query"] }
    # the clusterer (and recluster job) searches a new face's neighbourhood: read only
    clusterer-read = { role = "roles/storage.objectViewer", member = local.sa["clusterer"] }
    # rebuild writes segments + the manifest, both jobs their checkpoints (jobs/)
    jobs-rw = { role = "roles/storage.objectUser", member = local.jobs_sa }
  }

  depends_on = [google_kms_crypto_key_iam_member.cmek]
}

module "crops" {
  source = "../bucket"

  project_id                    = var.project_id
  name                          = local.bucket_names.crops
  location                      = local.bucket_location
  labels                        = local.labels
  force_destroy                 = var.force_destroy_buckets
  kms_key_name                  = var.kms_key_name
  access_log_bucket             = var.access_log_bucket
  soft_delete_retention_seconds = var.soft_delete_retention_seconds

  lifecycle_rules = var.crops_ttl_days == null ? [] : [
    { age_days = var.crops_ttl_days },
  ]

  iam_members = {
    ingest-write      = { role = "roles/storage.objectUser", member = local.sa["ingest"] }
    query-read        = { role = "roles/storage.objectViewer", member = local.sa["query"] }
    query-delete      = { role = google_project_iam_custom_role.crop_deleter.name, member = local.sa["query"] }
    cloudinary-delete = { role = google_project_iam_custom_role.crop_deleter.name, member = local.sa["cloudinary"] }
    indexer-erase     = { role = google_project_iam_custom_role.collection_eraser.name, member = local.sa["indexer"] }
  }

  depends_on = [google_kms_crypto_key_iam_member.cmek]
}
