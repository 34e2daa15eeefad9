//! `cargo lprobe build|check|run|test|bench`: builds an instrumented copy of the workspace.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The instrumented build runs cargo with this binary as its compiler wrapper.
    if cargo_lprobe::build::runtime_cache::is_wrapper_call(&args) {
        std::process::exit(cargo_lprobe::build::runtime_cache::main(&args));
    }
    std::process::exit(cargo_lprobe::build::driver::main(&args));
}
