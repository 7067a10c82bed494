//! keel: a step graph, persisted in an installation-state file, that turns a fresh
//! Debian/Ubuntu host into a Django + Celery production stack. This file is only the module
//! list; the layers, from the bottom (each imports only from below it), are drawn in the
//! README and checked by scripts/layers.py.
pub mod app;
pub mod appenv;
pub mod apps;
pub mod backup;
pub mod certs;
pub mod checks;
pub mod cli;
pub mod commands;
pub mod config;
pub mod deploy;
pub mod deps;
pub mod dotenv;
pub mod drift;
pub mod engine;
pub mod envset;
pub mod envsource;
pub mod error;
pub mod events;
pub mod exec;
pub mod fsx;
pub mod graph;
pub mod health_notify;
pub mod html;
pub mod maintenance;
pub mod notify;
pub mod outbox;
pub mod paths;
pub mod process;
pub mod project;
pub mod pyversion;
pub mod redact;
pub mod release;
pub mod render;
pub mod report;
pub mod requirements;
pub mod resume;
pub mod retry;
pub mod schedule;
pub mod secrets;
pub mod stack;
pub mod state;
pub mod step;
pub mod steps;
pub mod system;
pub mod systemd;
pub mod timeline;
pub mod tree;
pub mod txn;
pub mod ui;
pub mod validate;

pub use commands::run;
