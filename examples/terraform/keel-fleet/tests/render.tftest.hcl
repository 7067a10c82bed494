# terraform test: the module renders offline (no provider). Each role's user-data parses as
# cloud-config and carries that role's keel.toml.
variables {
  app_name     = "shop"
  domain       = "shop.example.com"
  keel_deb_url = "https://downloads.example.com/keel_0.1.0-1_amd64.deb"
  app_git      = "https://git.example.com/shop.git"
  hosts = {
    db   = { roles = ["database", "redis"], private_address = "10.0.1.10" }
    web1 = { roles = ["web", "worker", "beat"], private_address = "10.0.1.21" }
    web2 = { roles = ["web", "worker"], private_address = "10.0.1.22" }
    work = { roles = ["worker"], private_address = "10.0.1.31" }
  }
  allow_from  = ["10.0.1.0/24"]
  ca_pem      = "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n"
  db_cert_pem = "-----BEGIN CERTIFICATE-----\nDB\n-----END CERTIFICATE-----\n"
  db_key_pem  = "-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n"
  secrets = {
    postgres_password = "pg-secret"
    redis_password    = "redis-secret"
    admin_password    = "admin-secret"
    env_secret_key    = "django-secret"
  }
}

run "every_role_renders_cloud_config" {
  command = plan

  assert {
    condition     = alltrue([for name, ud in output.user_data : startswith(ud, "#cloud-config\n")])
    error_message = "every document starts with #cloud-config"
  }
  assert {
    condition = alltrue([for name, ud in output.user_data : one([
      for f in yamldecode(ud).write_files : f.content if f.path == "/etc/keel/keel.toml"
    ]) == output.keel_toml[name]])
    error_message = "each host's user-data parses as YAML and writes that host's keel.toml"
  }
  assert {
    condition     = alltrue([for name, ud in output.user_data : yamldecode(ud).runcmd[1] == ["keel", "install", "--yes"]])
    error_message = "each host runs keel install --yes"
  }
  assert {
    condition     = alltrue([for name, ud in output.user_data : length([for f in yamldecode(ud).write_files : f if startswith(f.path, "/etc/keel/secrets/") && f.permissions == "0600"]) == 4])
    error_message = "each host gets the four pre-shared secrets, 0600"
  }
}

run "database_host" {
  command = plan

  assert {
    condition     = strcontains(output.keel_toml["db"], "roles = [\"database\",\"redis\"]")
    error_message = "the database host's roles"
  }
  assert {
    condition     = strcontains(output.keel_toml["db"], "listen = \"10.0.1.10\"") && strcontains(output.keel_toml["db"], "allow_from = [\"10.0.1.0/24\"]")
    error_message = "PostgreSQL listens on the private address, for allow_from"
  }
  assert {
    condition     = !strcontains(output.keel_toml["db"], "[django]") && !strcontains(output.keel_toml["db"], "url =")
    error_message = "the database host runs no app and reaches no URL"
  }
  assert {
    condition     = contains([for f in yamldecode(output.user_data["db"]).write_files : f.path], "/etc/keel/db-server.key")
    error_message = "the database host gets its key"
  }
}

run "app_hosts" {
  command = plan

  assert {
    condition     = strcontains(output.keel_toml["web1"], "url = \"postgres://shop@10.0.1.10:5432/shop?sslmode=verify-full\"")
    error_message = "app hosts reach the database by URL, verify-full"
  }
  assert {
    condition     = strcontains(output.keel_toml["web1"], "roles = [\"web\",\"worker\",\"beat\"]") && strcontains(output.keel_toml["work"], "roles = [\"worker\"]")
    error_message = "each app host's roles"
  }
  assert {
    condition     = alltrue([for n in ["web1", "web2", "work"] : contains([for f in yamldecode(output.user_data[n]).write_files : f.path], "/etc/keel/fleet-ca.pem")])
    error_message = "app hosts get the CA"
  }
  assert {
    condition     = alltrue([for n in ["web1", "web2", "work"] : !contains([for f in yamldecode(output.user_data[n]).write_files : f.path], "/etc/keel/db-server.key")])
    error_message = "the database key stays on the database host"
  }
}

run "bad_roles_are_refused" {
  command = plan
  variables {
    hosts = {
      db = { roles = ["database", "redis", "mail"], private_address = "10.0.1.10" }
    }
  }
  expect_failures = [var.hosts]
}

run "open_network_is_refused" {
  command = plan
  variables {
    allow_from = ["0.0.0.0/0"]
  }
  expect_failures = [var.allow_from]
}
