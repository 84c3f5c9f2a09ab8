//! The `talos-server` binary: parses the command line and runs it on a multi-threaded tokio
//! runtime; everything else lives in the library (`lib.rs`) so the tests can drive it.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = talos_server::Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(talos_server::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
