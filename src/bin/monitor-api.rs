//! `monitor-api`: the sharding line-protocol proxy. Thin main: arguments, config, logging, then
//! `monitor::proxy::server::serve`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use monitor::config::api::LogFormat;
use monitor::config::load_api_config;

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
    let config = match load_api_config(&args.config) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("monitor-api: refusing to start:\n{error}");
            return ExitCode::FAILURE;
        }
    };
    monitor::telemetry::init_logging(
        "monitor-api",
        &config.log.level,
        config.log.format == LogFormat::Json,
    );
    let config_path = args.config.clone();
    let served = monitor::runtime::run_server(async move {
        monitor::proxy::server::serve(config, &config_path).await
    });
    match served {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("monitor-api: {error}");
            ExitCode::FAILURE
        }
        Ok(Err(error)) => {
            tracing::error!(%error, config = %args.config.display(), "monitor-api stopped");
            eprintln!("monitor-api: {error}");
            ExitCode::FAILURE
        }
    }
}
