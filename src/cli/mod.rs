//! The command line: `run`, `check`, `explain`, `rotate`, `revoke`. Each returns the process exit code of the
//! contract (0 fine, 1 refused or fatal, 2 bad usage or config).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod check;
mod explain;
mod keys;
mod run;

#[derive(Parser)]
#[command(
    name = "credgate",
    version,
    about = "Credential-injecting sidecar for the Bloomreach Engagement API"
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Subcommand)]
pub enum Command {
    /// Start the proxy.
    Run {
        #[arg(long, env = "CREDGATE_CONFIG")]
        config: PathBuf,
    },
    /// Validate the config and secrets file and print the effective policy.
    Check {
        #[arg(long, env = "CREDGATE_CONFIG")]
        config: PathBuf,
    },
    /// Rotate a private group's secret through Bloomreach and write the updated secrets file.
    Rotate {
        #[arg(long, env = "CREDGATE_CONFIG")]
        config: PathBuf,
        /// The group whose secret is rotated (private access).
        #[arg(long)]
        group: String,
        /// Where to write the complete updated secrets file (mode 0600).
        #[arg(long)]
        write: PathBuf,
        /// JSON pointer to the new secret in Bloomreach's response.
        #[arg(long, default_value = "/secret")]
        secret_field: String,
        /// Rotate even if the last rotation is less than 24 hours old.
        #[arg(long)]
        force: bool,
    },
    /// Revoke a group's credential through Bloomreach (a dry run without --yes).
    Revoke {
        #[arg(long, env = "CREDGATE_CONFIG")]
        config: PathBuf,
        #[arg(long)]
        group: String,
        /// Really revoke it.
        #[arg(long)]
        yes: bool,
    },
    /// Say what credgate would do with a request, without any network.
    Explain {
        #[arg(long, env = "CREDGATE_CONFIG")]
        config: PathBuf,
        /// GET, POST, ...
        method: String,
        /// The request target, e.g. /track/v2/projects/<token>/customers/events
        path: String,
        /// A request header, 'Name: value' (repeatable).
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// The request body (read for endpoints whose permission depends on it).
        #[arg(long)]
        body: Option<PathBuf>,
    },
}

pub fn main(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Run { config } => run::run(&config),
        Command::Check { config } => check::check(&config),
        Command::Rotate {
            config,
            group,
            write,
            secret_field,
            force,
        } => keys::rotate(&config, &group, &write, &secret_field, force),
        Command::Revoke { config, group, yes } => keys::revoke(&config, &group, yes),
        Command::Explain {
            config,
            method,
            path,
            headers,
            body,
        } => explain::explain(&config, &method, &path, &headers, body.as_deref()),
    }
}
