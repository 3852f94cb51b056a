//! `otactl`: the admin and CI command line of the OTA service (docs/api.md's admin endpoints), so
//! that nobody needs curl to publish, roll out or watch firmware.

mod cli;
mod client;
mod commands;
mod error;
mod image;
mod output;
mod pending;
mod staging;
mod table;
mod upload;
mod views;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // clap prints its own usage errors and exits with 2.
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("otactl: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("otactl: {}", error::one_line(&e.to_string()));
            e.exit_code()
        }
    }
}
