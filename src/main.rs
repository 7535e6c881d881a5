//! The `usagelake` binary: all of it lives in the library, see [`usagelake::cli`].

fn main() -> std::process::ExitCode {
    usagelake::cli::main()
}
