//! The `ferry` binary: everything it does is in the library's `cli` module.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    ferry::cli::main()
}
