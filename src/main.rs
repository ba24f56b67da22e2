// mimalloc: an upload allocates and frees millions of small values across two threads
// (the parser's and the writer's); glibc's malloc was a sixth of the writer's time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    offsync::cli::main()
}
