//! `monitorctl`: operator CLI over the monitor APIs, plus offline tools. Thin main: argument
//! parsing and exit codes only; each command lives in `monitor::ctl`.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use monitor::ctl;
use monitor::protocol::{Classifier, Precision};

#[derive(Parser)]
#[command(
    name = "monitorctl",
    version,
    about = "Operate monitor-api and monitor-alert-manager"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Line-protocol tools.
    Lp {
        #[command(subcommand)]
        command: LpCommand,
    },
}

#[derive(Subcommand)]
enum LpCommand {
    /// Lint line protocol: one JSON object per line; exit status 1 when any line failed.
    Parse {
        /// Timestamp precision of the input (v1 spellings: n, ns, u, us, ms, s, m, h).
        #[arg(long, default_value = "ns")]
        precision: String,
        /// Tag that carries the index.
        #[arg(long, default_value = "index")]
        index_tag: String,
        /// Measurement name of log lines.
        #[arg(long, default_value = "log")]
        log_measurement: String,
        /// Measurement name of tracelog lines.
        #[arg(long, default_value = "tracelog")]
        tracelog_measurement: String,
        /// Tag that carries the trace id on tracelog lines.
        #[arg(long, default_value = "traceid")]
        trace_id_tag: String,
        /// File to read; `-` or nothing reads standard input.
        file: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("monitorctl: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Lp {
            command:
                LpCommand::Parse {
                    precision,
                    index_tag,
                    log_measurement,
                    tracelog_measurement,
                    trace_id_tag,
                    file,
                },
        } => {
            let Some(precision) = Precision::from_v1(&precision) else {
                bail!("--precision {precision:?} is not one of n, ns, u, us, ms, s, m, h");
            };
            let classifier = Classifier {
                index_tag: index_tag.into_bytes(),
                log_measurement: log_measurement.into_bytes(),
                tracelog_measurement: tracelog_measurement.into_bytes(),
                trace_id_tag: trace_id_tag.into_bytes(),
            };
            let body = read_input(file.as_deref())?;
            let stdout = io::stdout();
            let mut out = io::BufWriter::new(stdout.lock());
            let summary = ctl::lp::lint(&body, precision, &classifier, &mut out)
                .context("writing the lint output")?;
            out.flush().context("writing the lint output")?;
            Ok(if summary.any_failed() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

fn read_input(file: Option<&std::path::Path>) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    match file {
        None => io::stdin()
            .read_to_end(&mut body)
            .context("reading standard input")?,
        Some(path) if path.as_os_str() == "-" => io::stdin()
            .read_to_end(&mut body)
            .context("reading standard input")?,
        Some(path) => {
            body = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            body.len()
        }
    };
    Ok(body)
}
