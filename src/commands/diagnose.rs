//! `keel diagnose`: write the report (text and JSON, secrets masked).
use super::context::{CtxOptions, Invocation, build_ctx};
use crate::error::Result;

pub fn run(inv: &Invocation) -> Result<()> {
    let cli = &inv.cli;
    let cfg = inv.config()?;
    // A state file keel cannot read is refused before any check runs (a check may create a
    // missing secret).
    super::context::load_state(&cli.state_file)?;
    let mut o = CtxOptions::new(inv, &crate::paths::run_id());
    o.quiet = true;
    let ctx = std::sync::Arc::new(build_ctx(cfg, o));
    // Every check but the one that runs the app's code (as the app's user).
    let r = crate::checks::health::evaluate_without(&ctx, false, &["audit-deploy-check"]);
    let health = crate::report::Health {
        verdict: format!("{:?}", r.verdict).to_lowercase(),
        checks: r.checks,
        from: format!(
            "keel verify's checks but manage.py check --deploy (diagnose runs none of the app's code), in {} ms",
            r.duration_ms
        ),
    };
    let (txt, html) = crate::report::write(&ctx, &cli.state_file, Some(&health))?;
    println!("wrote {}", txt.display());
    // The page to open in a browser (file://); keel runs no web server.
    println!("wrote {}", html.display());
    Ok(())
}
