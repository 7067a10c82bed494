# One cloud's root module around keel-fleet (Hetzner Cloud here; any cloud that takes
# user_data works the same): a private network, the hosts, a load balancer health-checking
# /keel-health/lb. Checked with `terraform fmt` only: its provider cannot be downloaded in CI.
terraform {
  required_providers {
    hcloud = { source = "hetznercloud/hcloud", version = "~> 1.45" }
    random = { source = "hashicorp/random", version = "~> 3.6" }
  }
}

variable "keel_deb_url" { type = string }
variable "app_git" { type = string }
variable "domain" { type = string }
variable "ca_pem" { type = string }
variable "db_cert_pem" { type = string }
variable "db_key_pem" {
  type      = string
  sensitive = true
}

locals {
  hosts = {
    db   = { roles = ["database", "redis"], private_address = "10.0.1.10" }
    web1 = { roles = ["web", "worker", "beat"], private_address = "10.0.1.21" }
    web2 = { roles = ["web", "worker"], private_address = "10.0.1.22" }
  }
}

# The fleet's secrets: made once here, kept in Terraform's state (encrypt the state).
resource "random_password" "secret" {
  for_each = toset(["postgres_password", "redis_password", "admin_password", "env_secret_key"])
  length   = 40
  special  = false
}

module "fleet" {
  source       = "../keel-fleet"
  app_name     = "shop"
  domain       = var.domain
  keel_deb_url = var.keel_deb_url
  app_git      = var.app_git
  hosts        = local.hosts
  allow_from   = ["10.0.1.16/28"]
  ca_pem       = var.ca_pem
  db_cert_pem  = var.db_cert_pem
  db_key_pem   = var.db_key_pem
  secrets      = { for k, r in random_password.secret : k => r.result }
  extra_toml   = "[health]\npath = \"/\"\n"
}

resource "hcloud_network" "private" {
  name     = "shop"
  ip_range = "10.0.0.0/16"
}

resource "hcloud_network_subnet" "hosts" {
  network_id   = hcloud_network.private.id
  type         = "cloud"
  network_zone = "eu-central"
  ip_range     = "10.0.1.0/24"
}

resource "hcloud_server" "host" {
  for_each    = local.hosts
  name        = "shop-${each.key}"
  image       = "debian-12"
  server_type = each.key == "db" ? "cx32" : "cx22"
  location    = "fsn1"
  user_data   = module.fleet.user_data[each.key]
  network {
    network_id = hcloud_network.private.id
    ip         = each.value.private_address
  }
  depends_on = [hcloud_network_subnet.hosts]
}

# Terraform does not wait for cloud-init by itself (hashicorp/terraform#4668): this waits
# for each host's keel install, and fails the apply when it failed.
resource "terraform_data" "installed" {
  for_each         = hcloud_server.host
  triggers_replace = [each.value.id]
  connection {
    host = each.value.ipv4_address
    user = "root"
  }
  provisioner "remote-exec" {
    inline = ["cloud-init status --wait --long"]
  }
}

resource "hcloud_load_balancer" "web" {
  name               = "shop"
  load_balancer_type = "lb11"
  location           = "fsn1"
}

resource "hcloud_load_balancer_network" "web" {
  load_balancer_id = hcloud_load_balancer.web.id
  network_id       = hcloud_network.private.id
}

resource "hcloud_load_balancer_target" "web" {
  for_each         = { for k, h in local.hosts : k => h if contains(h.roles, "web") }
  type             = "server"
  load_balancer_id = hcloud_load_balancer.web.id
  server_id        = hcloud_server.host[each.key].id
  use_private_ip   = true
  depends_on       = [hcloud_load_balancer_network.web]
}

resource "hcloud_load_balancer_service" "http" {
  load_balancer_id = hcloud_load_balancer.web.id
  protocol         = "http"
  listen_port      = 80
  destination_port = 80
  health_check {
    protocol = "http"
    port     = 80
    interval = 3
    timeout  = 2
    retries  = 2
    http {
      # keel's endpoint: no Host header needed; 503 while a host drains (deploy --drain).
      path         = "/keel-health/lb"
      status_codes = ["200"]
    }
  }
}
