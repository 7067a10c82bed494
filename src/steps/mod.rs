//! The steps, one file each, and the registry that puts them in the graph: adding a step
//! is its file plus one line here.
use crate::graph::Graph;
use crate::step::Step;

pub mod app_code;
pub mod app_env;
pub mod backup;
pub mod baseline;
pub mod build;
pub mod django;
pub mod firewall;
pub mod nginx;
pub mod packages;
pub mod postgres;
pub mod preflight;
pub mod python_env;
pub mod redis;
pub mod schedules;
pub mod secrets;
pub mod services;
pub mod system_user;
pub mod tls;
pub mod verify;

/// The steps other layers name (commands that run one on the admin's behalf, or ask whether
/// it completed): the strings live here, with the steps.
pub const NGINX: &str = "nginx";
pub const SERVICES: &str = "services";

pub fn graph() -> Graph {
    Graph::new(registry()).expect("the registry is a DAG in dependency order (steps::tests)")
}

/// Every step, dependencies first: adding a step is its file, its `mod` line and one line
/// here.
fn registry() -> Vec<Box<dyn Step>> {
    vec![
        Box::new(preflight::Preflight),
        Box::new(packages::Apt::PYTHON),
        Box::new(packages::Apt::SYSTEM),
        Box::new(baseline::Baseline),
        Box::new(firewall::FirewallStep),
        Box::new(system_user::SystemUser),
        Box::new(secrets::SecretsStep),
        Box::new(postgres::Postgres),
        Box::new(redis::Redis),
        Box::new(nginx::Nginx),
        Box::new(tls::Tls),
        Box::new(app_code::AppCode),
        Box::new(python_env::PythonEnv),
        Box::new(app_env::AppEnv),
        Box::new(build::Build),
        Box::new(django::Django),
        Box::new(backup::BackupStep),
        Box::new(services::Services),
        Box::new(schedules::Schedules),
        Box::new(verify::Verify),
    ]
}

#[cfg(test)]
mod tests {
    /// The registry is well formed: each step after its dependencies, ids distinct and
    /// kebab-case (they are CLI arguments and state-file keys), every dependency registered.
    #[test]
    fn the_registry_is_a_dag_in_dependency_order() {
        let steps: Vec<Box<dyn crate::step::Step>> = super::registry();
        let n = steps.len();
        let g = crate::graph::Graph::new(steps).expect("registry");
        assert_eq!(g.ids().len(), n);
        for id in g.ids() {
            assert!(
                id.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{id} is not kebab-case"
            );
        }
    }
}
