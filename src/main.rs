use std::process::ExitCode;

fn main() -> ExitCode {
    // Behave like other Unix command-line tools when output is piped into `head`: end quietly
    // instead of panicking on a broken pipe.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // glibc hands every block above its mmap threshold (at most 32 MiB) back to the kernel when it is freed, so each
    // of a model's 30–140 MB activations arrives as fresh pages to fault in and zero again (≈ 9 % of an AST forward
    // pass on the CPU). Keep such blocks in the heap for reuse instead (up to 1 GiB of free heap is kept).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("DAMS_MALLOC_DEFAULTS").is_none() {
        // SAFETY: mallopt only changes allocator tunables; called before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        }
    }
    dams::cli::main()
}
