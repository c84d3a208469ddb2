//! `monitorctl`: operator CLI over the monitor APIs, plus offline tools. Thin main: argument
//! parsing and exit codes only; each command lives in `monitor::ctl`.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use monitor::config::ConfigKind;
use monitor::ctl;
use monitor::protocol::{Classifier, Precision};

#[derive(Parser)]
#[command(
    name = "monitorctl",
    version,
    about = "Operate monitor-api and monitor-alert-manager"
)]
struct Cli {
    /// monitor-api base URL.
    #[arg(
        long,
        global = true,
        env = "MONITOR_API_URL",
        default_value = "http://127.0.0.1:8186"
    )]
    url: String,
    /// Token for monitor-api (an admin token for `shardmap set`).
    #[arg(long, global = true, env = "MONITOR_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// monitor-alert-manager base URL.
    #[arg(
        long,
        global = true,
        env = "MONITOR_AM_URL",
        default_value = "http://127.0.0.1:9193"
    )]
    am_url: String,
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
    /// Read or replace the live shard map of monitor-api.
    Shardmap {
        #[command(subcommand)]
        command: ShardmapCommand,
    },
    /// Every replica: up, circuit, backlog, dead letters, in sync.
    Replicas {
        /// Print monitor-api's /health JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Every line of one trace across all groups, oldest first, with its span per source.
    Trace {
        /// The trace id.
        id: String,
        /// Search only this index's group.
        #[arg(long)]
        index: Option<String>,
        /// Client database (default: the server's `search.database`).
        #[arg(long)]
        db: Option<String>,
        /// Print the API's JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Log lines, newest first.
    Logs {
        #[arg(long)]
        index: Option<String>,
        #[arg(long)]
        host: Option<String>,
        #[arg(long)]
        source: Option<String>,
        #[arg(long)]
        level: Option<String>,
        /// Substring of the message (matched literally).
        #[arg(long)]
        contains: Option<String>,
        /// Look back this far (15m, 1h, 2d); the server's default is 1h.
        #[arg(long, conflicts_with = "start")]
        since: Option<String>,
        /// From this time: RFC 3339 or epoch nanoseconds.
        #[arg(long)]
        start: Option<String>,
        /// Until this time: RFC 3339 or epoch nanoseconds.
        #[arg(long)]
        end: Option<String>,
        /// At most this many lines (server default 100).
        #[arg(long)]
        limit: Option<usize>,
        /// Client database (default: the server's `search.database`).
        #[arg(long)]
        db: Option<String>,
        /// table (default), json or lp.
        #[arg(long, default_value = "table")]
        format: String,
        /// Same as `--format json`.
        #[arg(long)]
        json: bool,
    },
    /// Hosts of the host registry: last seen, active (GET /api/v1/hosts).
    Hosts {
        /// Only this index.
        #[arg(long)]
        index: Option<String>,
        /// Only this host.
        #[arg(long)]
        host: Option<String>,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Ignore rules of monitor-alert-manager (Alertmanager silences are ignore rules too).
    Ignores {
        #[command(subcommand)]
        command: IgnoresCommand,
    },
    /// Issued alerts of monitor-alert-manager (delivered, inside ReissueDuration or owed a Success).
    Issued {
        /// Clear this fingerprint from IssuedAlerts (no Success message is sent).
        #[arg(long)]
        clear: Option<String>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Alerts monitor-alert-manager knows and what its pipeline did with each.
    Alerts {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check a config file offline with the same loader the programs use.
    CheckConfig {
        /// api, alert-manager or rules; detected from the file's keys when absent.
        #[arg(long)]
        kind: Option<String>,
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum IgnoresCommand {
    /// Every rule with its state (pending, active, expired).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Add a rule; prints its id.
    Add {
        /// Matchers, Alertmanager syntax: host="h1" alertname=~"Disk.*" severity!=info.
        #[arg(required = true)]
        matchers: Vec<String>,
        /// Start (RFC 3339); default now.
        #[arg(long)]
        starts_at: Option<String>,
        /// End (RFC 3339); default none (until removed).
        #[arg(long, conflicts_with = "duration")]
        ends_at: Option<String>,
        /// Instead of --ends-at: how long, e.g. 2h.
        #[arg(long)]
        duration: Option<String>,
        #[arg(long, env = "USER", default_value = "monitorctl")]
        author: String,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Remove a rule by id.
    Rm { id: String },
}

#[derive(Subcommand)]
enum ShardmapCommand {
    /// Print the live shard map (secrets redacted).
    Get,
    /// Replace the shard map with FILE (JSON or YAML); validated, versioned and persisted.
    Set { file: PathBuf },
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
    let target = ctl::admin::ApiTarget {
        url: cli.url.clone(),
        token: cli.token.clone(),
    };
    let am = ctl::alerts::AmTarget {
        url: cli.am_url.clone(),
    };
    match cli.command {
        Command::Ignores { command } => {
            let output = block_on(async {
                match command {
                    IgnoresCommand::List { json } => ctl::alerts::ignores_list(&am, json).await,
                    IgnoresCommand::Add {
                        matchers,
                        starts_at,
                        ends_at,
                        duration,
                        author,
                        comment,
                    } => {
                        let rule = ctl::alerts::NewIgnore {
                            matchers,
                            starts_at,
                            ends_at,
                            duration,
                            author,
                            comment,
                        };
                        ctl::alerts::ignores_add(&am, &rule).await
                    }
                    IgnoresCommand::Rm { id } => ctl::alerts::ignores_rm(&am, &id).await,
                }
            })??;
            print!("{output}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Issued { clear, json } => {
            let output = block_on(ctl::alerts::issued(&am, clear.as_deref(), json))??;
            print!("{output}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Alerts { json } => {
            let output = block_on(ctl::alerts::alerts(&am, json))??;
            print!("{output}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Shardmap { command } => {
            let output = block_on(async {
                match command {
                    ShardmapCommand::Get => ctl::admin::shardmap_get(&target).await,
                    ShardmapCommand::Set { file } => ctl::admin::shardmap_set(&target, &file).await,
                }
            })??;
            println!("{output}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Replicas { json } => {
            let output = block_on(ctl::admin::replicas(&target, json))??;
            print!("{output}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Trace {
            id,
            index,
            db,
            json,
        } => {
            let format = if json {
                ctl::search::OutputFormat::Json
            } else {
                ctl::search::OutputFormat::Table
            };
            let output = block_on(ctl::search::trace(
                &target,
                &id,
                index.as_deref(),
                db.as_deref(),
                format,
            ))??;
            print_search_output(&output);
            Ok(ExitCode::SUCCESS)
        }
        Command::Logs {
            index,
            host,
            source,
            level,
            contains,
            since,
            start,
            end,
            limit,
            db,
            format,
            json,
        } => {
            let format = match (json, format.as_str()) {
                (true, _) | (false, "json") => ctl::search::OutputFormat::Json,
                (false, "table") => ctl::search::OutputFormat::Table,
                (false, "lp") => ctl::search::OutputFormat::LineProtocol,
                (false, other) => bail!("--format {other:?} is not one of table, json, lp"),
            };
            let query = ctl::search::LogsQuery {
                index,
                host,
                source,
                level,
                contains,
                start: since.or(start),
                end,
                limit,
                db,
            };
            let output = block_on(ctl::search::logs(&target, &query, format))??;
            print_search_output(&output);
            Ok(ExitCode::SUCCESS)
        }
        Command::Hosts { index, host, json } => {
            let output = block_on(ctl::hosts::hosts(
                &target,
                index.as_deref(),
                host.as_deref(),
                json,
            ))??;
            print!("{output}");
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { kind, file } => {
            let kind = match kind.as_deref() {
                None => None,
                Some("api") => Some(ConfigKind::Api),
                Some("alert-manager") => Some(ConfigKind::AlertManager),
                Some("rules") => Some(ConfigKind::Rules),
                Some(other) => bail!("--kind {other:?} is not one of api, alert-manager, rules"),
            };
            match ctl::admin::check_config(&file, kind) {
                Ok(report) => {
                    println!("{}: ok ({} config)", file.display(), report.kind);
                    for warning in report.warnings {
                        println!("warning: {warning}");
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(error) => {
                    eprintln!("{error}");
                    Ok(ExitCode::from(1))
                }
            }
        }
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

fn print_search_output(output: &ctl::search::Output) {
    for warning in &output.warnings {
        eprintln!("warning: {warning}");
    }
    print!("{}", output.stdout);
}

fn block_on<F: std::future::Future>(future: F) -> Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    Ok(runtime.block_on(future))
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
