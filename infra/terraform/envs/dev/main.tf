# dev: scale to zero, one GPU instance at most, no zonal redundancy, everything deletable.

module "facesearch" {
  source = "../../modules/facesearch"

  project_id  = var.project_id
  region      = var.region
  environment = "dev"
  image       = var.image
  labels      = { cost-center = "facesearch-dev" }

  deletion_protection           = false
  force_destroy_buckets         = true
  soft_delete_retention_seconds = 0
  crops_ttl_days                = 30
  index_grace_period_days       = 2

  ingest = {
    min_instances = 0
    max_instances = 1
  }
  indexer = {
    max_instances = 1
  }
  query = {
    max_instances = 2
  }
  gpu_zonal_redundancy_disabled = true

  query_public          = var.query_public
  query_invokers        = var.query_invokers
  uploaders             = var.uploaders
  image_pushers         = var.image_pushers
  notification_channels = var.notification_channels

  cloudinary_cloud_name          = var.cloudinary_cloud_name
  cloudinary_secure_distribution = var.cloudinary_secure_distribution
  cloudinary_api_secret          = var.cloudinary_api_secret
  cloudinary_api_secret_version  = var.cloudinary_api_secret_version
  signing_keys                   = var.signing_keys
  signing_keys_version           = var.signing_keys_version
}
