//! The `consolidator` binary: parses the command line and calls into the library.

mod cli;

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    consolidator::telemetry::init(&cli.log.log_format);
    cli.run().await
}
