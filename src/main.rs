//! The `jobd` binary: `serve`, `worker`, and the client commands.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use jobd::cli::{self, ClientCommand};
use jobd::config::{Settings, SettingsArgs};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(name = "jobd", version, about = "A background-job service")]
struct Cli {
    /// Log format.
    #[arg(long, global = true, env = "JOBD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// The server the client commands talk to.
    #[arg(
        long,
        global = true,
        env = "JOBD_URL",
        default_value = "http://127.0.0.1:8000"
    )]
    url: String,
    /// The bearer token the client commands send (servers with
    /// `auth = "token"`); from the environment only, so that it does not
    /// show in process listings.
    #[arg(skip = std::env::var("JOBD_TOKEN").ok())]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP API with in-process workers.
    Serve(ServerArgs),
    /// Run workers only, without the API.
    Worker(ServerArgs),
    #[command(flatten)]
    Client(ClientCommand),
}

#[derive(Debug, clap::Args)]
struct ServerArgs {
    /// A TOML file with settings and [job_types.*].
    #[arg(long, env = "JOBD_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: SettingsArgs,
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Fires the token on the first SIGINT or SIGTERM; a second one exits at once.
fn on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => Some(signal),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    None
                }
            };
        for round in 0..2 {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
            if round == 0 {
                token.cancel();
            } else {
                tracing::warn!("second signal: exiting now");
                std::process::exit(130);
            }
        }
    });
}

async fn run_server(args: ServerArgs, serve: bool) -> ExitCode {
    let settings = match Settings::load(args.settings, args.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("jobd: {e:#}");
            return ExitCode::from(2);
        }
    };
    let shutdown = CancellationToken::new();
    on_signals(shutdown.clone());
    let result = if serve {
        jobd::server::serve(settings, shutdown).await
    } else {
        jobd::server::work(settings, shutdown).await
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jobd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            init_logging(cli.log_format);
            run_server(args, true).await
        }
        Command::Worker(args) => {
            init_logging(cli.log_format);
            run_server(args, false).await
        }
        Command::Client(command) => cli::run(&cli.url, cli.token, command).await,
    }
}
