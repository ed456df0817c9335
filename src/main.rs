//! `pushlab`: the command users run. Thin on purpose: parse arguments, hand them to the
//! crates that do the work (`pushlab-server`, `pushlab-loadgen`).

mod cli;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new()?;
    let code = runtime.block_on(cli.run())?;
    std::process::exit(code)
}
