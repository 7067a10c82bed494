# keel's fleet as cloud-init user-data, one document per host: no provider here, so any
# cloud's root module can hand each host its document (user_data) and this module is tested
# offline (terraform test).
locals {
  db_host    = one([for name, h in var.hosts : name if contains(h.roles, "database")])
  db_address = var.hosts[local.db_host].private_address
  redis_host = one([for name, h in var.hosts : name if contains(h.roles, "redis")])

  keel_toml = {
    for name, h in var.hosts : name => templatefile("${path.module}/keel.toml.tftpl", {
      app_name      = var.app_name
      domain        = var.domain
      roles         = h.roles
      address       = h.private_address
      allow_from    = var.allow_from
      db_address    = local.db_address
      redis_address = var.hosts[local.redis_host].private_address
      app_git       = var.app_git
      app_git_ref   = var.app_git_ref
      db_wait_secs  = var.db_wait_secs
      runs_app      = length(setintersection(h.roles, ["web", "worker", "beat"])) > 0
      extra_toml    = var.extra_toml
    })
  }

  # Secrets first (0600 in a 0700 directory made at boot, before write_files), then keel.toml,
  # then the certificates this host's roles need.
  files = {
    for name, h in var.hosts : name => concat(
      [for k, v in var.secrets : {
        path        = "/etc/keel/secrets/${k}"
        content     = v
        owner       = "root:root"
        permissions = "0600"
      }],
      [{
        path        = "/etc/keel/keel.toml"
        content     = local.keel_toml[name]
        owner       = "root:root"
        permissions = "0644"
      }],
      contains(h.roles, "database") ? [
        { path = "/etc/keel/db-server.pem", content = var.db_cert_pem, owner = "root:root", permissions = "0644" },
        { path = "/etc/keel/db-server.key", content = var.db_key_pem, owner = "root:root", permissions = "0600" },
        ] : [
        { path = "/etc/keel/fleet-ca.pem", content = var.ca_pem, owner = "root:root", permissions = "0644" },
      ],
    )
  }

  user_data = {
    for name, h in var.hosts : name => "#cloud-config\n${yamlencode({
      bootcmd     = [["install", "-d", "-m", "0700", "-o", "root", "-g", "root", "/etc/keel/secrets"]]
      write_files = local.files[name]
      # keel install is unattended under cloud-init (no TTY: plain timestamped lines in
      # /var/log/cloud-init-output.log). App hosts wait for the database host up to
      # db_wait_secs; their exit status is cloud-init's.
      runcmd = [
        ["sh", "-c", "curl -fsSL --retry 5 -o /root/keel.deb '${var.keel_deb_url}' && apt-get install -y /root/keel.deb"],
        ["keel", "install", "--yes"],
      ]
    })}"
  }
}
