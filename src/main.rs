//! The `snapwarden` binary: hands the command line to `snapwarden::cli`.

fn main() -> std::process::ExitCode {
    snapwarden::cli::main()
}
