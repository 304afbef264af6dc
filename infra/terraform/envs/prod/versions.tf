terraform {
  # 1.11+: ephemeral variables and write-only arguments keep secret values out of state.
  required_version = ">= 1.11.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.50.0, < 7.0.0"
    }
  }

  # Partial configuration: `terraform init -backend-config=backend.hcl`
  # (copy backend.hcl.example). State lives in a versioned GCS bucket per environment.
  backend "gcs" {}
}

provider "google" {
  project = var.project_id
  region  = var.region
}
