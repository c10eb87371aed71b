//! The `sluice` binary: argument parsing, logging, and wiring of the
//! library crates. Kept thin; the work lives in `crates/*`.
//!
//! Map:
//! - `main.rs`: the command line (clap) and logging setup.
//! - `bench_hash.rs`: `sluice bench hash`, the share-validation throughput
//!   measurement.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

mod bench_hash;

/// sluice: a Stratum V1/V2 mining proxy and pool node that validates every
/// share itself and reports what each worker really earns.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about, long_about = None)]
struct Cli {
    /// Log filter (tracing `EnvFilter` syntax, e.g. `info` or
    /// `sluice=debug`); `RUST_LOG` is used when this is absent.
    #[arg(long, global = true, value_name = "FILTER")]
    log: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure this machine's capacity.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Share-validation throughput per core against the naive baseline and
    /// the raw SHA-256 compression rate (about 7 s; `--quick` for a smoke
    /// run).
    Hash(BenchHashArgs),
}

#[derive(Debug, Args)]
struct BenchHashArgs {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Short measurement slices (well under a second; figures are noisy).
    #[arg(long)]
    quick: bool,
}

fn init_logging(filter: Option<&str>) {
    let filter = match filter {
        Some(f) => EnvFilter::new(f),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log.as_deref());
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Bench(BenchCommand::Hash(args)) => {
            let (slice, rounds) = if args.quick {
                (Duration::from_millis(10), 2)
            } else {
                (Duration::from_millis(200), 5)
            };
            let report = bench_hash::run(slice, rounds);
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", bench_hash::render(&report));
            }
            Ok(())
        }
    }
}
