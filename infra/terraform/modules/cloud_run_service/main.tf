# One Cloud Run v2 service running the shared functions-framework image. FUNCTION_TARGET
# picks the function; the image's entrypoint maps it to functions/<target>/main.py.
# A GPU (NVIDIA L4 by default) is attached when gpu_count > 0: Cloud Run then requires
# CPU always allocated (cpu_idle = false), >= 4 vCPU and >= 16 GiB, and the
# gpu_zonal_redundancy setting on the revision template.

locals {
  gpu = var.gpu_count > 0

  memory_mib = (
    endswith(var.memory, "Gi") ? tonumber(trimsuffix(var.memory, "Gi")) * 1024 :
    tonumber(trimsuffix(var.memory, "Mi"))
  )

  limits = merge(
    { cpu = var.cpu, memory = var.memory },
    local.gpu ? { "nvidia.com/gpu" = tostring(var.gpu_count) } : {},
  )

  env = merge(var.env, { FUNCTION_TARGET = var.function_target })
}

resource "google_cloud_run_v2_service" "this" {
  project             = var.project_id
  location            = var.region
  name                = var.name
  description         = var.description
  ingress             = var.ingress
  deletion_protection = var.deletion_protection
  labels              = merge(var.labels, { function = var.function_target })

  template {
    service_account                  = var.service_account_email
    timeout                          = "${var.timeout_seconds}s"
    max_instance_request_concurrency = var.concurrency
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2"
    gpu_zonal_redundancy_disabled    = local.gpu ? var.gpu_zonal_redundancy_disabled : null
    labels                           = merge(var.labels, { function = var.function_target })

    scaling {
      min_instance_count = var.min_instances
      max_instance_count = var.max_instances
    }

    dynamic "node_selector" {
      for_each = local.gpu ? [var.gpu_type] : []
      content {
        accelerator = node_selector.value
      }
    }

    containers {
      name  = var.function_target
      image = var.image

      ports {
        container_port = 8080
      }

      resources {
        limits            = local.limits
        cpu_idle          = local.gpu ? false : var.cpu_idle
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = local.env
        content {
          name  = env.key
          value = env.value
        }
      }

      # Model sessions load on first use; give cold starts (GPU: CUDA init) room.
      startup_probe {
        initial_delay_seconds = 0
        period_seconds        = 5
        timeout_seconds       = 3
        failure_threshold     = var.startup_probe_failure_threshold
        tcp_socket {
          port = 8080
        }
      }
    }
  }

  lifecycle {
    precondition {
      condition     = !local.gpu || (tonumber(var.cpu) >= 4 && local.memory_mib >= 16384)
      error_message = "Cloud Run GPU services need at least 4 vCPU and 16Gi memory."
    }
    precondition {
      condition     = !local.gpu || var.max_instances >= 1
      error_message = "A GPU service needs max_instances >= 1 (and GPU quota for that many)."
    }
  }
}

resource "google_cloud_run_v2_service_iam_member" "invokers" {
  for_each = var.invokers

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.this.name
  role     = "roles/run.invoker"
  member   = each.value
}

# Deliberately public endpoints (signature-protected query API, Cloudinary webhook) only.
resource "google_cloud_run_v2_service_iam_member" "public" {
  count = var.public ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.this.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}
