//! `monitor-api`: the sharding line-protocol proxy. Thin main: arguments, logging, then
//! `monitor::proxy::server::serve`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "monitor-api",
    version,
    about = "Sharding InfluxDB line-protocol proxy"
)]
struct Args {
    /// The configuration file (YAML).
    #[arg(long, default_value = "config/monitor-api.yaml")]
    config: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    monitor::telemetry::init_logging("monitor-api");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("monitor-api: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(monitor::proxy::server::serve(&args.config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, config = %args.config.display(), "monitor-api stopped");
            eprintln!("monitor-api: {error}");
            ExitCode::FAILURE
        }
    }
}
