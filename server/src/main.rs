//! `rindled [--config file.json]`: parses the flag, sets up logging (stderr,
//! `RUST_LOG`), and calls [`rindle_server::run`] until SIGTERM or SIGINT.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use rindle_server::{Config, Ready, run};

const USAGE: &str = "usage: rindled [--config <file.json>]
  without --config: ./rindle.db, control plane on 7600, WebSocket on 7601, QUIC on 7602";

fn parse_args() -> Result<Option<PathBuf>, String> {
    let mut args = std::env::args().skip(1);
    let mut config = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" | "-c" => match args.next() {
                Some(p) => config = Some(PathBuf::from(p)),
                None => return Err("--config needs a file".into()),
            },
            "--help" | "-h" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok(config)
}

async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let fail = |message: &str| {
        eprintln!("rindled: {message}");
        ExitCode::FAILURE
    };
    let config = match parse_args() {
        Ok(None) => Config::default(),
        Ok(Some(path)) => match Config::from_file(&path) {
            Ok(c) => c,
            Err(e) => return fail(&e.to_string()),
        },
        Err(e) => return fail(&e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    let announce = |ready: &Ready| {
        let line = serde_json::to_string(ready).unwrap_or_default();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    let result = runtime.block_on(run(config, signal(), announce));
    // Blocking work that outlived the shutdown timeout is not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string()),
    }
}
