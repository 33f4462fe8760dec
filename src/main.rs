use std::process::ExitCode;

fn main() -> ExitCode {
    // Behave like other Unix command-line tools when output is piped into `head`: end quietly
    // instead of panicking on a broken pipe.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    dams::cli::main()
}
