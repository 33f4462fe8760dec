use std::process::ExitCode;

fn main() -> ExitCode {
    dams::cli::main()
}
