//! `cargo lprobe build|check|run|test|bench`: builds an instrumented copy of the workspace.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(cargo_lprobe::driver::main(&args));
}
