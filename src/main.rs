use clap::Parser;

fn main() {
    let cli = keel::cli::Cli::parse();
    let json = cli.output == keel::cli::Output::Json;
    if let Err(e) = keel::run(cli) {
        let code = e.exit_code();
        if let keel::error::Error::Passed(c) = e {
            std::process::exit(c);
        }
        // An unhealthy verdict was already printed as the command's own JSON document.
        if json && !matches!(e, keel::error::Error::Unhealthy(_)) {
            let v =
                serde_json::json!({"error": e.to_string(), "hint": e.hint(), "exit_code": code});
            println!("{v}");
        }
        eprintln!("keel: error: {e}");
        if let Some(h) = e.hint() {
            eprintln!("  hint: {h}");
        }
        std::process::exit(code);
    }
}
