//! The steps, one file each, and the graph they form.
use crate::graph::{Graph, Step};

pub mod packages;
pub mod preflight;

pub fn graph() -> Graph {
    let steps: Vec<Box<dyn Step>> = vec![Box::new(preflight::Preflight), Box::new(packages::Packages)];
    Graph::new(steps)
}
