//! The `talos-server` binary: parses the command line and runs it on a multi-threaded tokio
//! runtime; everything else lives in the library (`lib.rs`) so the tests can drive it.

use clap::Parser;

/// mimalloc instead of glibc's malloc: a verify allocates a few dozen small blocks across the
/// request, the middleware and the answer, and glibc's malloc/free took about 10% of the
/// server's CPU under verify load (perf; docs/benchmarks.md, "HTTP load", Analysis).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
