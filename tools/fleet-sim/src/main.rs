//! `fleet-sim`: N simulated ESP32 devices updating through `esp_https_ota` against the OTA
//! service, while the simulator drives a canary -> 100 % rollout and checks afterwards that no
//! acknowledged status report went missing. See docs/fleet-sim.md.

mod admin;
mod cli;
mod device;
mod http;
mod image;
mod latency;
mod plan;
mod report;
mod rollout;
mod tokens;
mod verify;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    if let Err(e) = args.check() {
        eprintln!("fleet-sim: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fleet-sim: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let summary = match runtime.block_on(rollout::run(&args)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fleet-sim: {e:#}");
            return ExitCode::from(1);
        }
    };
    print!("{}", summary.table());
    if let Some(path) = &args.json_out {
        let text = serde_json::to_string_pretty(&summary).expect("the summary serialises");
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("fleet-sim: writing {}: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    if summary.ok {
        ExitCode::SUCCESS
    } else {
        for p in &summary.problems {
            eprintln!("fleet-sim: {p}");
        }
        ExitCode::from(1)
    }
}
