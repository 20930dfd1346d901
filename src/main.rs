//! The `code-runner` binary: parses the subcommand and starts that process,
//! or runs a command-line client command against a running API.

mod cli;

use clap::{Parser, Subcommand};

use code_runner::config::{Config, Mode};
use code_runner::executor::local::sandbox;
use code_runner::{app, telemetry};

#[derive(Parser)]
#[command(
    name = "code-runner",
    version,
    about = "Runs submitted code in isolation, queued in Redis"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API, the UI and /metrics.
    Api,
    /// Take runs off the queue and execute them.
    Worker,
    /// Run the API and a worker with the local executor in one process (no cluster needed).
    Dev,
    #[command(flatten)]
    Client(cli::ClientCommand),
}

fn main() -> std::process::ExitCode {
    // The sandbox init step must run before any thread exists, so it is
    // checked ahead of argument parsing and the runtime.
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(sandbox::INIT_ARG) {
        sandbox::run_init(&args[2..]);
    }

    let cli = Cli::parse();
    let mode = match cli.command {
        Command::Api => Mode::Api,
        Command::Worker => Mode::Worker,
        Command::Dev => Mode::Dev,
        Command::Client(command) => return cli::main(command),
    };
    let config = match Config::from_env(mode) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("code-runner: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);

    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime starts");
    let result = runtime.block_on(async move {
        match mode {
            Mode::Api => app::run_api(config).await,
            Mode::Worker => app::run_worker(config).await,
            Mode::Dev => app::run_dev(config).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(
                error = format!("{error:#}"),
                "code-runner stopped with an error"
            );
            std::process::ExitCode::FAILURE
        }
    }
}
