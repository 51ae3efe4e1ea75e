//! The `scanhook` binary: every role is a subcommand; see `scanhook::cli`.

fn main() -> std::process::ExitCode {
    scanhook::cli::main()
}
