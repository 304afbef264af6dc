# Values never enter Terraform state: either add versions with gcloud (value_version = 0,
# the default), or pass them as ephemeral variables written through secret_data_wo.

module "signing_keys" {
  source = "../secret"

  project_id          = var.project_id
  secret_id           = "${local.prefix}-signing-keys"
  labels              = local.labels
  deletion_protection = var.deletion_protection
  value               = var.signing_keys
  value_version       = var.signing_keys_version
  accessors           = { query = local.sa["query"] }

  depends_on = [google_project_service.apis]
}

module "cloudinary_secret" {
  source = "../secret"

  project_id          = var.project_id
  secret_id           = "${local.prefix}-cloudinary-api-secret"
  labels              = local.labels
  deletion_protection = var.deletion_protection
  value               = var.cloudinary_api_secret
  value_version       = var.cloudinary_api_secret_version
  accessors           = { cloudinary = local.sa["cloudinary"] }

  depends_on = [google_project_service.apis]
}
