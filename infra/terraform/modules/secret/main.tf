# A Secret Manager secret whose value never enters Terraform state: either created empty
# (add versions with `gcloud secrets versions add`), or written through the write-only
# argument `secret_data_wo` from an ephemeral variable. Bump `value_version` to rotate.

resource "google_secret_manager_secret" "this" {
  project             = var.project_id
  secret_id           = var.secret_id
  labels              = var.labels
  deletion_protection = var.deletion_protection

  replication {
    auto {
      dynamic "customer_managed_encryption" {
        for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
        content {
          kms_key_name = customer_managed_encryption.value
        }
      }
    }
  }
}

resource "google_secret_manager_secret_version" "this" {
  count = var.value_version > 0 ? 1 : 0

  secret                 = google_secret_manager_secret.this.id
  secret_data_wo         = var.value
  secret_data_wo_version = var.value_version

  lifecycle {
    precondition {
      condition     = var.value != null
      error_message = "value_version > 0 but no value given: pass it with TF_VAR_... (ephemeral)."
    }
  }
}

resource "google_secret_manager_secret_iam_member" "accessors" {
  for_each = var.accessors

  project   = var.project_id
  secret_id = google_secret_manager_secret.this.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = each.value
}
