//! `cargo lprobe build|check|run|test|bench`: builds an instrumented copy of the workspace.

/// The rewrite parses every source file with syn, which allocates per token and per node:
/// with glibc's allocator, `malloc` and `free` were a third of the instructions lprobe spends
/// before cargo starts (bytes: 507 M instructions in all, 391 M with this allocator).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The instrumented build runs cargo with this binary as its compiler wrapper.
    if cargo_lprobe::build::runtime_cache::is_wrapper_call(&args) {
        std::process::exit(cargo_lprobe::build::runtime_cache::main(&args));
    }
    std::process::exit(cargo_lprobe::build::driver::main(&args));
}
