use clap::Parser;

fn main() {
    // `keel notify status | grep -q x`: a reader that stops early closes the pipe, and
    // println! (or clap_complete) panics on the EPIPE. Leave quietly with SIGPIPE's status, as C tools do (the
    // signal itself stays ignored: keel writes to its children's stdin and must see EPIPE).
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .unwrap_or("");
        if msg.contains("Broken pipe") || msg.contains("BrokenPipe") {
            std::process::exit(141);
        }
        default_hook(info);
    }));
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
