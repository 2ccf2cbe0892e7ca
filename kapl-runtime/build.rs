//! Link-time set-up for this crate's tests only: the agreement test links
//! the prover (a dev-dependency), so libz3 from `.z3/z3/lib` (see
//! `.cargo/config.toml`) is embedded as an rpath of the test binaries. The
//! library itself never links Z3.

fn main() {
    println!("cargo:rerun-if-env-changed=Z3_LIBRARY_PATH_OVERRIDE");
    if let Ok(dir) = std::env::var("Z3_LIBRARY_PATH_OVERRIDE") {
        println!("cargo:rustc-link-arg-tests=-Wl,-rpath,{dir}");
    }
}
