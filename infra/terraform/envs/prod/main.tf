# prod: warm GPU instance, zonal redundancy, deletion protection everywhere, PITR,
# immutable image tags, longer soft delete and index grace period.

module "facesearch" {
  source = "../../modules/facesearch"

  project_id  = var.project_id
  region      = var.region
  environment = "prod"
  image       = var.image
  labels      = { cost-center = "facesearch-prod" }

  deletion_protection              = true
  force_destroy_buckets            = false
  soft_delete_retention_seconds    = 2592000
  index_grace_period_days          = 7
  firestore_point_in_time_recovery = true
  immutable_image_tags             = true

  ingest = {
    min_instances = 1
    max_instances = var.ingest_max_instances
  }
  indexer = {
    min_instances = 1
    max_instances = 2
  }
  query = {
    min_instances = 1
    max_instances = 10
    gpu_count     = var.query_gpu ? 1 : 0
    cpu           = var.query_gpu ? "4" : "2"
    memory        = var.query_gpu ? "16Gi" : "4Gi"
  }
  gpu_zonal_redundancy_disabled = false

  query_public          = var.query_public
  query_invokers        = var.query_invokers
  uploaders             = var.uploaders
  image_pushers         = var.image_pushers
  notification_channels = var.notification_channels
  error_rate_threshold  = 0.02

  cloudinary_cloud_name          = var.cloudinary_cloud_name
  cloudinary_secure_distribution = var.cloudinary_secure_distribution
  cloudinary_api_secret          = var.cloudinary_api_secret
  cloudinary_api_secret_version  = var.cloudinary_api_secret_version
  signing_keys                   = var.signing_keys
  signing_keys_version           = var.signing_keys_version
}
