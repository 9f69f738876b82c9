#![deny(unsafe_code)]

fn main() {
    let code = contain::cli::main(std::env::args_os().collect());
    std::process::exit(code);
}
