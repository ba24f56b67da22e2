fn main() -> std::process::ExitCode {
    offsync::cli::main()
}
