//! `pushlab`: the command users run. Thin on purpose: parse arguments, hand them to the
//! crates that do the work (`pushlab-server`, `pushlab-loadgen`).

mod cli;

/// Exit code for errors (bad arguments, a run that could not be made); a regression
/// found by `pushlab bench` is 1, success 0.
const ERROR_EXIT: i32 = 2;

fn main() {
    let (cli, explicit) = cli::Cli::parse_args();
    // results.json names the commit this binary was built from (see build.rs).
    pushlab_loadgen::lab::set_build_commit(env!("PUSHLAB_GIT_COMMIT"));
    cli::show_progress();
    // Before the runtime: the packet link moves the whole process into a namespace.
    cli.prepare_link();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let code = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(cli.run(explicit)).unwrap_or_else(|error| {
            eprintln!("error: {error:#}");
            ERROR_EXIT
        }),
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            ERROR_EXIT
        }
    };
    std::process::exit(code)
}
