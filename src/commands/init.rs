//! `keel init`: an interactive wizard that writes a keel.toml.
use crate::cli::Cli;
use crate::config::Config;
use crate::error::{Error, Result};
use std::io::IsTerminal;

/// `keel init`: a wizard that writes keel.toml.
pub fn run(cli: &Cli) -> Result<()> {
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(Error::usage(
            "keel init needs a terminal",
            "write keel.toml yourself (see examples/demo.toml) for unattended use",
        ));
    }
    use dialoguer::{Confirm, Input};
    let io = |e: dialoguer::Error| Error::Other(e.into());
    let path = &cli.config;
    if path.exists()
        && !Confirm::new()
            .with_prompt(format!("{} exists. Overwrite?", path.display()))
            .default(false)
            .interact()
            .map_err(io)?
    {
        return Err(Error::usage(
            "not overwritten",
            "pass --config FILE to write elsewhere",
        ));
    }
    let name: String = Input::new()
        .with_prompt("App name (lowercase, used for units and paths)")
        .default("demo".into())
        .interact_text()
        .map_err(io)?;
    let domain: String = Input::new()
        .with_prompt("Domain")
        .default(format!("{name}.example.com"))
        .interact_text()
        .map_err(io)?;
    let source: String = Input::new()
        .with_prompt("App source: a directory (relative to the config) or a git URL")
        .default(format!("{name}-app"))
        .interact_text()
        .map_err(io)?;
    let email: String = Input::new()
        .with_prompt("Admin e-mail")
        .default(format!("admin@{domain}"))
        .interact_text()
        .map_err(io)?;
    let git = ["https://", "ssh://", "git@", "file://"]
        .iter()
        .any(|p| source.starts_with(p));
    let src_line = if git {
        format!("git = {source:?}\ngit_ref = \"main\"")
    } else {
        format!("source = {source:?}")
    };
    // git sources need git on the host.
    let packages = if git {
        "[\"postgresql\", \"redis-server\", \"nginx\", \"git\"]"
    } else {
        "[\"postgresql\", \"redis-server\", \"nginx\"]"
    };
    let text = format!(
        "# Written by keel init. See examples/demo.toml for every key.\n[app]\nname = {name:?}\ndomain = {domain:?}\n\n[packages]\ninstall = {packages}\n\n[django]\n{src_line}\nadmin_email = {email:?}\n"
    );
    // Validate before writing: the wizard must never produce a config keel refuses.
    Config::parse(&text, path)?;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    crate::txn::write_atomic(path, text.as_bytes(), 0o644, None).map_err(|e| Error::io(path, e))?;
    println!(
        "wrote {}; next: keel install --config {}",
        path.display(),
        path.display()
    );
    Ok(())
}
