//! The steps, one file each, and the registry that puts them in the graph: adding a step
//! is its file plus one line here.
use crate::graph::Graph;
use crate::step::Step;

pub mod app_code;
pub mod app_env;
pub mod django;
pub mod nginx;
pub mod packages;
pub mod postgres;
pub mod preflight;
pub mod python_env;
pub mod redis;
pub mod secrets;
pub mod services;
pub mod system_user;
pub mod verify;

pub fn graph() -> Graph {
    let steps: Vec<Box<dyn Step>> = vec![
        Box::new(preflight::Preflight),
        Box::new(packages::Apt::PYTHON),
        Box::new(packages::Apt::SYSTEM),
        Box::new(system_user::SystemUser),
        Box::new(secrets::SecretsStep),
        Box::new(postgres::Postgres),
        Box::new(redis::Redis),
        Box::new(nginx::Nginx),
        Box::new(app_code::AppCode),
        Box::new(python_env::PythonEnv),
        Box::new(app_env::AppEnv),
        Box::new(django::Django),
        Box::new(services::Services),
        Box::new(verify::Verify),
    ];
    Graph::new(steps)
}
