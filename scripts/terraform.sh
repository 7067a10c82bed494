#!/usr/bin/env bash
# The Terraform examples: the provider-less module (examples/terraform/keel-fleet) is
# formatted, valid and passes its tests (each role's user-data parses as cloud-config and
# writes that role's keel.toml); the cloud root module is checked for format only (its
# provider cannot be downloaded here).
set -euo pipefail
cd "$(dirname "$0")/.."
tf=${TERRAFORM:-terraform}
command -v "$tf" >/dev/null || { echo "$tf is missing (OpenTofu: TERRAFORM=tofu)" >&2; exit 2; }
mkdir -p target/terraform
# Nothing written beside the example (its .terraform directory lives under target/).
export TF_DATA_DIR="$PWD/target/terraform/data" TF_IN_AUTOMATION=1 TF_INPUT=0
export TF_CLI_CONFIG_FILE="$PWD/target/terraform/cli.tfrc"
: >"$TF_CLI_CONFIG_FILE"
"$tf" fmt -check -recursive examples/terraform
"$tf" -chdir=examples/terraform/keel-fleet init -backend=false -lockfile=readonly >/dev/null
"$tf" -chdir=examples/terraform/keel-fleet validate -no-color
"$tf" -chdir=examples/terraform/keel-fleet test -no-color
