//! `kaplc`: check, build and inspect KAPL policies.

fn main() {
    std::process::exit(2);
}
