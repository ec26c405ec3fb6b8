use std::num::NonZeroUsize;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use volley::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .init();
    // tokio's multi-thread scheduler defaults to one worker thread per CPU this process may
    // use. With one CPU the current-thread scheduler does the same work with less overhead
    // per task wake-up (measured with benches/compare.sh, see BENCHMARKS.md).
    let threads = cli
        .threads
        .or_else(|| std::thread::available_parallelism().ok());
    let mut builder = match threads.map(NonZeroUsize::get) {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(threads) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads);
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => volley::commands::run(args).await,
            Command::Validate(args) => volley::commands::validate(&args),
            Command::Capacity(args) => volley::capacity_command::run(args).await,
            Command::Probe(args) => volley::commands::probe(args).await,
            Command::Mock(config) => volley::commands::mock(config).await,
            Command::Merge(args) => volley::shard::merge::run(&args.folders, args.out.as_deref()),
            Command::Report(args) => volley::commands::report(&args),
        }
    });
    ExitCode::from(code)
}
