//! The server under test as a separate process, and CPU and memory read from `/proc`.
//!
//! Running the server in its own process is what makes its CPU time and memory its own:
//! the load generator's work never mixes into the server's figures.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A `pushlab serve` started for one measurement.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// Its process id.
    pub pid: u32,
}

impl ServerProcess {
    /// Starts `exe serve --addr 127.0.0.1:0 ...extra` and waits for the address it prints.
    pub async fn spawn(exe: &Path, extra: &[String]) -> anyhow::Result<ServerProcess> {
        Self::spawn_on(exe, "127.0.0.1:0".parse().expect("a valid address"), extra).await
    }

    /// Starts `exe serve --addr ADDR ...extra` (e.g. to restart a server where its
    /// clients expect it) and waits for the address it prints.
    pub async fn spawn_on(
        exe: &Path,
        addr: std::net::SocketAddr,
        extra: &[String],
    ) -> anyhow::Result<ServerProcess> {
        let mut command = Command::new(exe);
        let mut child = crate::sys::die_with_parent(&mut command)
            .arg("serve")
            .args(["--addr", &addr.to_string()])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} serve", exe.display()))?;
        let pid = child.id().context("server exited at once")?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .context("server did not start within 10 s")??
            .context("server exited before listening")?;
        // `listening on http://ADDR (…)`, or `https://ADDR` with TLS.
        let after_scheme =
            line.split_once("https://").or_else(|| line.split_once("http://")).map(|(_, rest)| rest);
        let Some(addr) = after_scheme.and_then(|rest| rest.split_whitespace().next()) else {
            bail!("unexpected first line from the server: {line:?}");
        };
        let addr = addr.parse().with_context(|| format!("address in {line:?}"))?;
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(ServerProcess { child, addr, pid })
    }

    /// Asks the server to stop (SIGTERM, as Ctrl-C would) and waits; kills it if it has
    /// not exited within 3 s. Returns whether it exited cleanly with status 0.
    pub async fn stop(mut self) -> anyhow::Result<bool> {
        let pid = nix::unistd::Pid::from_raw(self.pid as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        match tokio::time::timeout(Duration::from_secs(3), self.child.wait()).await {
            Ok(status) => Ok(status?.success()),
            Err(_) => {
                self.child.kill().await?;
                Ok(false)
            }
        }
    }
}

/// Raises this process's soft limit on open files to the hard limit (one descriptor per
/// client connection) and returns the limit now in force.
pub fn raise_fd_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(_) => rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(0, |(soft, _)| soft),
    }
}

/// CPU time and memory of one process at one instant.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct ProcSample {
    /// User + system CPU seconds since the process started.
    pub cpu_seconds: f64,
    /// Resident memory now, bytes.
    pub rss_bytes: u64,
    /// Highest resident memory so far (VmHWM), bytes.
    pub peak_rss_bytes: u64,
}

impl ProcSample {
    /// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`.
    pub fn read(pid: u32) -> anyhow::Result<ProcSample> {
        let process = procfs::process::Process::new(pid as i32)?;
        let stat = process.stat()?;
        let ticks = procfs::ticks_per_second() as f64;
        let status = process.status()?;
        Ok(ProcSample {
            cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
            rss_bytes: status.vmrss.unwrap_or(0) * 1024,
            peak_rss_bytes: status.vmhwm.unwrap_or(0) * 1024,
        })
    }

    /// This process.
    pub fn myself() -> anyhow::Result<ProcSample> {
        Self::read(std::process::id())
    }
}
