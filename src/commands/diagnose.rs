//! `keel diagnose`: write the report (text and JSON, secrets masked).
use super::context::{CtxOptions, build_ctx};
use crate::cli::Cli;
use crate::config::Config;
use crate::error::Result;

pub fn run(cli: &Cli) -> Result<()> {
    let cfg = Config::load(&cli.config)?;
    let mut o = CtxOptions::new(cli, &crate::paths::run_id());
    o.quiet = true;
    let ctx = build_ctx(cfg, o);
    let (txt, _) = crate::report::write(&ctx, &cli.state_file)?;
    println!("wrote {}", txt.display());
    Ok(())
}
