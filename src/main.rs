fn main() {
    std::process::exit(scenedex::cli::main());
}
