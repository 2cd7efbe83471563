use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = credgate::cli::Cli::parse();
    credgate::telemetry::init(cli.log_format);
    credgate::cli::main(cli)
}
