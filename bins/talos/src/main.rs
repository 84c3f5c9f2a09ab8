//! `talos`: thin entry point; see the library crate.

fn main() {
    std::process::exit(talos::run(std::env::args_os()));
}
