//! `offsync-bench`: measures offsync from outside, as its users meet it: real `offsync serve`
//! processes (the `offsync` program built beside this one), real HTTP, fresh databases it
//! creates and drops. Kept out of the server's library: nothing here ships. Figures and the
//! commands that made them are in docs/performance.md.

mod contention;
mod floor;
mod suite;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "offsync-bench",
    about = "Measures offsync end to end (docs/performance.md)"
)]
struct Cli {
    /// Also measure on this PostgreSQL server (a URL of any database on it; the bench makes
    /// and drops its own databases).
    #[arg(long, global = true)]
    postgres: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// offsync beside ../shared/floor on the same files: upload and first download.
    Floor {
        /// The floor program (../shared/floor/README.md says how to build it).
        #[arg(
            long,
            env = "OFFSYNC_FLOOR",
            default_value = "/tmp/floor-zlibrs/release/floor"
        )]
        floor: PathBuf,
        #[arg(long, default_value_t = 100_000)]
        rows: u64,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Only this database ("sqlite" or "postgres").
        #[arg(long)]
        only: Option<String>,
    },
    /// Session opens and page saves, alone and while one large upload is applied.
    DuringUpload {
        #[arg(long, default_value_t = 200_000)]
        edits: u64,
    },
    /// Uploads of disjoint rows one after another, then all at once (1 and 2 instances).
    Parallel {
        #[arg(long, default_value_t = 8)]
        uploads: usize,
        #[arg(long, default_value_t = 10_000)]
        edits: u64,
    },
    /// A first download, an upload and the download after it, with the server's peak memory.
    Sync {
        /// Row counts to measure, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
        rows: Vec<u64>,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        #[arg(long)]
        only: Option<String>,
    },
    /// Many devices syncing at once (open, upload, download, complete).
    Load {
        /// Devices at once (1 to 200, loopback only).
        #[arg(long, default_value_t = 50)]
        devices: usize,
        #[arg(long, default_value_t = 10_000)]
        edits: usize,
        #[arg(long, default_value_t = 100_000)]
        rows: u64,
        /// Pin each instance to this many CPUs of its own (taskset).
        #[arg(long)]
        cpus_per_instance: Option<usize>,
    },
    /// The conflict pages with this many open conflicts (SQLite).
    Pages {
        #[arg(long, default_value_t = 10_000)]
        conflicts: usize,
    },
    /// Each gzip level on a first download of this many rows.
    Gzip {
        #[arg(long, default_value_t = 100_000)]
        rows: u64,
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let pg = cli.postgres.clone();
    let outcome = match cli.command {
        Command::Floor {
            floor,
            rows,
            runs,
            only,
        } => floor::compare(floor::FloorArgs {
            floor,
            rows,
            runs,
            postgres: pg,
            only,
        }),
        Command::DuringUpload { edits } => contention::during_upload(edits, pg.as_deref()),
        Command::Parallel { uploads, edits } => contention::parallel(uploads, edits, pg.as_deref()),
        Command::Sync { rows, runs, only } => suite::run(suite::BenchArgs {
            rows,
            runs,
            postgres: pg,
            only,
        }),
        Command::Load {
            devices,
            edits,
            rows,
            cpus_per_instance,
        } => suite::load(suite::LoadArgs {
            devices,
            edits,
            rows,
            postgres: pg,
            cpus_per_instance: cpus_per_instance.filter(|&n| n > 0),
        }),
        Command::Pages { conflicts } => suite::pages(conflicts, 200),
        Command::Gzip { rows, runs } => suite::gzip_levels(rows, runs),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("offsync-bench: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
