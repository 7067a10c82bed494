output "user_data" {
  description = "cloud-init user-data per host name (it holds the secrets: sensitive)."
  value       = local.user_data
  sensitive   = true
}

output "keel_toml" {
  description = "keel.toml per host name (no secret in it)."
  value       = local.keel_toml
}

output "database_address" {
  description = "The database host's private address (app hosts' database.url)."
  value       = local.db_address
}
