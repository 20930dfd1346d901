//! The command-line client: `submit`, `runs`, `cancel` and `logs` against a
//! running code-runner API.

mod client;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use code_runner::run::{Run, RunStatus};
use futures::StreamExt;

use client::{CliError, Client, Deleted, NewRun};

/// Exit status of `submit --follow` when the run timed out, as `timeout(1)` uses.
const EXIT_TIMED_OUT: u8 = 124;
/// Interval of status polls after a log stream ended early.
const POLL: Duration = Duration::from_millis(500);

/// The API address and token, shared by every client command.
#[derive(Args, Debug)]
pub struct ServerArgs {
    /// Base URL of the code-runner API.
    #[arg(
        long,
        env = "CODE_RUNNER_URL",
        default_value = "http://127.0.0.1:8080",
        value_name = "URL"
    )]
    server: String,
    /// Bearer token, needed when the server sets API_TOKENS.
    #[arg(long, env = "CODE_RUNNER_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// The client subcommands.
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Submit a source file as a run; with --follow, stream its output and exit with its exit code.
    Submit {
        /// The program's source file; .py is Python and .js JavaScript unless --language is given.
        file: PathBuf,
        /// Language of the file: python or javascript (node).
        #[arg(long)]
        language: Option<String>,
        /// File whose contents the program gets on standard input; `-` reads this process's stdin.
        #[arg(long, value_name = "FILE")]
        stdin: Option<PathBuf>,
        /// Seconds the program may run (the server's default is 30).
        #[arg(long, value_name = "SECONDS")]
        timeout: Option<u64>,
        /// Stream the output until the run ends, then exit with the program's
        /// exit code (124 when it timed out, 1 when it could not run).
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List recent runs, newest first.
    Runs {
        /// Only runs in this state, such as running, failed or timed_out.
        #[arg(long)]
        status: Option<RunStatus>,
        /// Number of runs to list, from 1 to 500.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: u32,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Cancel an unfinished run.
    Cancel {
        /// The run's id.
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Print a run's output; with --follow, stream it until the run ends.
    Logs {
        /// The run's id.
        id: String,
        /// Stream the output until the run ends.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// Runs a client subcommand and returns the process's exit status.
pub fn main(command: ClientCommand) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    match runtime.block_on(run(command)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("code-runner: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: ClientCommand) -> Result<ExitCode, CliError> {
    match command {
        ClientCommand::Submit {
            file,
            language,
            stdin,
            timeout,
            follow,
            server,
        } => {
            let client = connect(&server)?;
            submit(&client, &file, language, stdin.as_deref(), timeout, follow).await
        }
        ClientCommand::Runs {
            status,
            limit,
            server,
        } => {
            let list = connect(&server)?.list(limit, status).await?;
            print!("{}", format_table(&list.runs));
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::Cancel { id, server } => cancel(&connect(&server)?, &id).await,
        ClientCommand::Logs { id, follow, server } => {
            let client = connect(&server)?;
            copy_to_stdout(client.logs(&id, follow).await?).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn connect(server: &ServerArgs) -> Result<Client, CliError> {
    Client::new(&server.server, server.token.clone())
}

async fn submit(
    client: &Client,
    file: &Path,
    language: Option<String>,
    stdin: Option<&Path>,
    timeout: Option<u64>,
    follow: bool,
) -> Result<ExitCode, CliError> {
    let language = match language {
        Some(language) => language,
        None => language_of(file)?.to_string(),
    };
    let code = read_text(file)?;
    let stdin = stdin.map(read_text).transpose()?;
    let run = client
        .submit(&NewRun {
            language,
            code,
            timeout_seconds: timeout,
            stdin,
        })
        .await?;

    if !follow {
        println!("{}", run.id);
        eprintln!(
            "code-runner: queued run {id}; see its output with `code-runner logs {id} --follow`",
            id = run.id
        );
        return Ok(ExitCode::SUCCESS);
    }

    let printed = copy_to_stdout(client.logs(&run.id, true).await?).await?;
    let run = wait_finished(client, &run.id).await?;
    // The stream ends early if the connection drops; the stored output has the rest.
    let rest = client
        .logs(&run.id, false)
        .await?
        .bytes()
        .await
        .unwrap_or_default();
    if rest.len() > printed {
        write_stdout(&rest[printed..]);
    }
    Ok(exit_code_of(&run))
}

/// Picks the language from the file's extension.
fn language_of(file: &Path) -> Result<&'static str, CliError> {
    match file.extension().and_then(|extension| extension.to_str()) {
        Some("py") => Ok("python"),
        Some("js" | "mjs" | "cjs") => Ok("javascript"),
        _ => Err(CliError::Usage(format!(
            "cannot tell the language of {} from its extension; pass --language python or --language javascript",
            file.display()
        ))),
    }
}

/// Reads a UTF-8 file, or this process's standard input for `-`.
fn read_text(path: &Path) -> Result<String, CliError> {
    let bytes = if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|error| CliError::Usage(format!("reading standard input failed: {error}")))?;
        bytes
    } else {
        std::fs::read(path)
            .map_err(|error| CliError::Usage(format!("cannot read {}: {error}", path.display())))?
    };
    String::from_utf8(bytes)
        .map_err(|_| CliError::Usage(format!("{} is not UTF-8 text", path.display())))
}

/// Polls the run until it reaches a final state.
async fn wait_finished(client: &Client, id: &str) -> Result<Run, CliError> {
    loop {
        let run = client.run(id).await?;
        if run.status.is_terminal() {
            return Ok(run);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Maps a finished run to this process's exit status, and explains every
/// ending but a plain exit on stderr.
fn exit_code_of(run: &Run) -> ExitCode {
    let detail = run
        .message
        .as_deref()
        .or(run.reason.as_deref())
        .map(|text| format!(": {text}"))
        .unwrap_or_default();
    match run.status {
        RunStatus::Succeeded => ExitCode::SUCCESS,
        RunStatus::Failed => match run.exit_code.and_then(|code| u8::try_from(code).ok()) {
            Some(code) if code != 0 => ExitCode::from(code),
            _ => {
                eprintln!("code-runner: run {} failed{detail}", run.id);
                ExitCode::FAILURE
            }
        },
        RunStatus::TimedOut => {
            match run.message.as_deref() {
                Some(message) => eprintln!("code-runner: run {} timed out: {message}", run.id),
                None => eprintln!(
                    "code-runner: run {} timed out after {} s",
                    run.id, run.timeout_seconds
                ),
            }
            ExitCode::from(EXIT_TIMED_OUT)
        }
        status => {
            eprintln!("code-runner: run {} ended as {status}{detail}", run.id);
            ExitCode::FAILURE
        }
    }
}

async fn cancel(client: &Client, id: &str) -> Result<ExitCode, CliError> {
    // DELETE removes a finished run, so check first that there is something to cancel.
    // NOTE: a run that finishes between the two requests is deleted, not cancelled.
    let run = client.run(id).await?;
    if run.status.is_terminal() {
        return Err(CliError::Usage(format!(
            "run {id} already finished as {}; there is nothing to cancel",
            run.status
        )));
    }
    match client.delete(id).await? {
        Deleted::Cancelled(run) => println!("run {} is {}", run.id, run.status),
        Deleted::Removed => {
            println!("run {id} finished before the cancel reached it, and was deleted")
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Copies a response body to stdout as it arrives and returns its length in bytes.
async fn copy_to_stdout(response: reqwest::Response) -> Result<usize, CliError> {
    let url = response.url().to_string();
    let mut stream = response.bytes_stream();
    let mut copied = 0;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => {
                write_stdout(&chunk);
                copied += chunk.len();
            }
            Err(error) => {
                // A dropped stream is not fatal: the caller fetches the rest.
                eprintln!(
                    "code-runner: the output stream from {url} ended early: {}",
                    client::root_cause(&error)
                );
                break;
            }
        }
    }
    Ok(copied)
}

fn write_stdout(bytes: &[u8]) {
    let mut stdout = std::io::stdout().lock();
    // A closed stdout (such as `| head`) is not an error of the run.
    let _ = stdout.write_all(bytes).and_then(|()| stdout.flush());
}

/// Formats runs as an aligned table with a header row.
fn format_table(runs: &[Run]) -> String {
    let header = ["ID", "LANGUAGE", "STATUS", "EXIT", "CREATED", "DURATION"].map(String::from);
    let mut rows = vec![header];
    for run in runs {
        rows.push([
            run.id.clone(),
            run.language.clone(),
            run.status.to_string(),
            run.exit_code
                .map(|code| code.to_string())
                .unwrap_or_else(|| "-".into()),
            run.created_at.clone(),
            run.duration_ms
                .map(|ms| format!("{:.2} s", ms as f64 / 1000.0))
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut table = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        table.push_str(cells.join("  ").trim_end());
        table.push('\n');
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_comes_from_extension() {
        assert_eq!(language_of(Path::new("a/hello.py")).unwrap(), "python");
        assert_eq!(language_of(Path::new("hello.mjs")).unwrap(), "javascript");
        assert!(language_of(Path::new("hello.rb")).is_err());
        assert!(language_of(Path::new("Makefile")).is_err());
    }
}
