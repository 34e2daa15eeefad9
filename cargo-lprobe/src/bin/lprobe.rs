//! `lprobe`: the client of instrumented programs' control sockets. See `lprobe --help`.

fn main() {
    std::process::exit(cargo_lprobe::cli::main());
}
