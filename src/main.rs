use std::process::ExitCode;

use clap::Parser;
use es_inference_operator::{
    config::{Cli, Command},
    crd, import, render, run, telemetry,
};
use tracing::error;

/// jemalloc gives freed memory back to the system on a timer (from a background thread, see
/// `.cargo/config.toml`); glibc's per-thread arenas keep theirs, so after a mass delete the
/// process stayed at its peak (README, "Benchmark").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd { write: false } => {
            print!("{}", crd::all_crds_yaml());
            ExitCode::SUCCESS
        }
        Command::Crd { write: true } => {
            for (path, content) in crd::generated_files() {
                if let Err(e) = std::fs::write(path, content) {
                    eprintln!("error: cannot write {path}: {e} (run from the repository root)");
                    return ExitCode::FAILURE;
                }
                println!("wrote {path}");
            }
            ExitCode::SUCCESS
        }
        Command::Render(args) => printed(render::run(&args)),
        Command::Import(args) => {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            printed(rt.block_on(import::run(&args)))
        }
        Command::Run(args) => {
            telemetry::init(args.log_format);
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    error!("cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(run::run(*args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    error!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// A command's output on stdout, or its error on stderr.
fn printed(result: Result<String, String>) -> ExitCode {
    match result {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
