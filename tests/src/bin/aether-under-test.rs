//! The `aether` CLI under test: `aether_cli::main()` built as this package's own binary, so the
//! suite can name it (`CARGO_BIN_EXE_aether-under-test`). `aether mount` re-executes the current
//! binary for its background process, which is then this one.

fn main() {
    std::process::exit(aether_cli::main());
}
