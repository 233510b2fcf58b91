//! The `snapwarden` binary: hands the command line to `snapwarden::cli`.

/// glibc's allocator, or mimalloc once a what-if run asks for it (`snapwarden::heap`).
#[global_allocator]
static HEAP: snapwarden::heap::Heap = snapwarden::heap::Heap;

fn main() -> std::process::ExitCode {
    snapwarden::cli::main()
}
