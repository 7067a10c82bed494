//! `keel releases`: the releases recorded in the state file, newest first.
use super::context::Invocation;
use crate::cli::Output;
use crate::error::Result;

pub fn run(inv: &Invocation) -> Result<()> {
    let cli = &inv.cli;
    let st = super::context::load_state(&cli.state_file)?;
    let current = st.releases.current.as_deref();
    if cli.output == Output::Json {
        let list: Vec<_> = st
            .releases
            .list
            .iter()
            .rev()
            .map(|r| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                v["current"] = (Some(r.id.as_str()) == current).into();
                v
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"current": current, "releases": list})
        );
        return Ok(());
    }
    if st.releases.list.is_empty() {
        println!("no releases yet (keel install makes the first)");
        return Ok(());
    }
    println!(
        "  {:<20} {:<9} {:<7} {:<13} {:<21} SOURCE",
        "ID", "STATUS", "BY", "REVISION", "CREATED"
    );
    for r in st.releases.list.iter().rev() {
        let mark = if Some(r.id.as_str()) == current {
            "*"
        } else {
            " "
        };
        let status = serde_json::to_value(r.status).unwrap_or_default();
        println!(
            "{mark} {:<20} {:<9} {:<7} {:<13} {:<21} {}",
            r.id,
            status.as_str().unwrap_or("?"),
            r.by,
            r.revision,
            r.created_at,
            r.source
        );
        if let Some(e) = &r.error {
            println!("    {e}");
        }
    }
    println!("(* = current)");
    Ok(())
}
