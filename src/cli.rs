//! The command line: `pushlab serve`, `pushlab lab`, `pushlab load`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

/// A benchmark and teaching lab for real-time web transports: short polling, long
/// polling, Server-Sent Events and WebSocket, measured the same way.
#[derive(Debug, Parser)]
#[command(name = "pushlab", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve one message stream over all four transports.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    /// Messages kept for clients that resume.
    #[arg(long, default_value_t = 10_000)]
    history: usize,
    /// Require `Authorization: Bearer TOKEN` (WebSocket: `?token=`) to publish.
    #[arg(long, value_name = "TOKEN")]
    publish_token: Option<String>,
    /// SSE keep-alive and WebSocket ping interval, e.g. 15s or 500ms.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    heartbeat: Duration,
    /// Largest message `data`, in bytes once encoded.
    #[arg(long, default_value_t = 64 * 1024)]
    max_message_bytes: usize,
    /// Subscribers served at once (SSE and WebSocket streams, poll requests in flight).
    #[arg(long, default_value_t = pushlab_server::Config::default().max_connections)]
    max_connections: usize,
}

impl Cli {
    /// Runs the command and returns the process exit code.
    pub(crate) async fn run(self) -> anyhow::Result<i32> {
        match self.command {
            Command::Serve(args) => serve(args).await.map(|()| 0),
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let fd_limit = pushlab_server::raise_fd_limit();
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let addr = listener.local_addr()?;
    let config = pushlab_server::Config {
        history: args.history,
        publish_token: args.publish_token,
        heartbeat: args.heartbeat,
        max_message_bytes: args.max_message_bytes,
        max_connections: args.max_connections,
        ..pushlab_server::Config::default()
    };
    // The load generator reads this line to learn the port: keep its shape.
    println!("pushlab serve: listening on http://{addr} (open files limit {fd_limit})");
    pushlab_server::run(listener, config, shutdown_signal()).await?;
    println!("pushlab serve: stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
