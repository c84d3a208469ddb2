//! `monitor-alert-manager`: alert suppression and delivery. Thin main: arguments, config,
//! logging, then `monitor::alertmanager::server::serve`. A config that does not load is refused
//! with exit status 2 and the file, line and key that are wrong.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use monitor::config::load_alert_manager_config;

#[derive(Parser)]
#[command(
    name = "monitor-alert-manager",
    version,
    about = "Alert suppression (ignore rules, occurrences, reissue, success) and delivery"
)]
struct Args {
    /// The configuration file (YAML).
    #[arg(long, default_value = "config/alert-manager.yaml")]
    config: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match load_alert_manager_config(&args.config) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("monitor-alert-manager: refusing to start:\n{error}");
            return ExitCode::from(2);
        }
    };
    monitor::telemetry::init_logging("monitor-alert-manager", &config.log_level, true);
    match monitor::runtime::run_server(monitor::alertmanager::server::serve(config)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("monitor-alert-manager: {error}");
            ExitCode::FAILURE
        }
        Ok(Err(error)) => {
            tracing::error!(%error, config = %args.config.display(), "monitor-alert-manager stopped");
            eprintln!("monitor-alert-manager: {error}");
            ExitCode::FAILURE
        }
    }
}
