//! Integration tests: the real binary against a fake host (a temp directory as the root
//! filesystem, commands recorded instead of run). One test binary, fast to link.
//! They need root (the system-user step chowns), as keel itself does.
// The tests stand outside keel: they start it, wait for it and read the machine, which
// clippy.toml keeps out of keel's own modules.
#![allow(clippy::disallowed_methods)]

mod apps;
mod attacks;
mod backup;
mod baseline;
mod cli;
mod corpus;
mod deploy;
mod drift;
mod engine;
mod fakehost;
mod firewall;
mod fleet;
mod notify;
mod ops;
mod probes;
mod projects;
mod tls;
