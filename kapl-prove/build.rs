//! Link-time set-up: binaries and tests of this crate link libz3, which
//! lives in `.z3/z3/lib` (see `.cargo/config.toml`); embed it as an rpath
//! so they run without `LD_LIBRARY_PATH`.

fn main() {
    println!("cargo:rerun-if-env-changed=Z3_LIBRARY_PATH_OVERRIDE");
    if let Ok(dir) = std::env::var("Z3_LIBRARY_PATH_OVERRIDE") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
