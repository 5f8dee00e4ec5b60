//! `aether`: parse the command line, run it, and turn a failure into one error line, one hint
//! line and a documented exit code.

fn main() {
    std::process::exit(aether_cli::main());
}
