variable "app_name" {
  description = "The app's name in keel.toml (units, user, database)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,30}$", var.app_name))
    error_message = "app_name: lowercase letters, digits and _ (a PostgreSQL and Unix name)."
  }
}

variable "domain" {
  description = "The site's domain (nginx server_name, ALLOWED_HOSTS)."
  type        = string
}

variable "keel_deb_url" {
  description = "Where each host downloads keel's .deb at first boot."
  type        = string
  validation {
    condition     = can(regex("^https://[^\\s\"']+\\.deb$", var.keel_deb_url))
    error_message = "keel_deb_url: an https URL of a .deb."
  }
}

variable "app_git" {
  description = "The app's git URL (app hosts build releases from it)."
  type        = string
}

variable "app_git_ref" {
  description = "The branch or tag app hosts install."
  type        = string
  default     = "main"
}

variable "hosts" {
  description = "Each host: its roles (database, redis, web, worker, beat) and its private address."
  type = map(object({
    roles           = list(string)
    private_address = string
  }))
  validation {
    condition = alltrue([for h in values(var.hosts) : length(h.roles) > 0 && alltrue([
      for r in h.roles : contains(["database", "redis", "web", "worker", "beat"], r)
    ])])
    error_message = "hosts[*].roles: some of database, redis, web, worker, beat."
  }
  validation {
    condition     = length([for h in values(var.hosts) : h if contains(h.roles, "database")]) == 1
    error_message = "hosts: exactly one host has the database role (or use a managed database: database_url)."
  }
  validation {
    condition     = length([for h in values(var.hosts) : h if contains(h.roles, "beat")]) >= 1
    error_message = "hosts: at least one host has the beat role (keel runs beat on one of them at a time)."
  }
  validation {
    condition     = alltrue([for h in values(var.hosts) : can(cidrhost("${h.private_address}/32", 0))])
    error_message = "hosts[*].private_address: an IPv4 address."
  }
}

variable "allow_from" {
  description = "Networks the database host's PostgreSQL and Redis accept (the app hosts')."
  type        = list(string)
  validation {
    condition     = alltrue([for n in var.allow_from : can(cidrnetmask(n)) && !endswith(n, "/0")])
    error_message = "allow_from: IPv4 networks in CIDR form, never /0."
  }
}

variable "db_wait_secs" {
  description = "How long an app host's keel install waits for the database host at boot."
  type        = number
  default     = 600
}

variable "ca_pem" {
  description = "The CA that signed the database host's certificate (app hosts check against it)."
  type        = string
}

variable "db_cert_pem" {
  description = "The database host's certificate (with its private address as an IP SAN)."
  type        = string
}

variable "db_key_pem" {
  description = "The database host's private key."
  type        = string
  sensitive   = true
}

variable "secrets" {
  description = "The fleet's pre-shared secrets by file name under /etc/keel/secrets (postgres_password, redis_password, admin_password, env_secret_key, ...): the same on every host. From random_password, a vault, ..."
  type        = map(string)
  sensitive   = true
  validation {
    condition     = alltrue([for k in ["postgres_password", "redis_password", "admin_password"] : contains(keys(var.secrets), k)])
    error_message = "secrets: postgres_password, redis_password and admin_password are required."
  }
  validation {
    condition     = alltrue([for k in keys(var.secrets) : can(regex("^[a-z][a-z0-9_]{0,63}$", k))])
    error_message = "secrets: names are file names: lowercase letters, digits and _."
  }
}

variable "extra_toml" {
  description = "The app's own keel.toml settings, appended as they are ([health], [celery], [env], ...)."
  type        = string
  default     = ""
}
