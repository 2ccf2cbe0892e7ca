//! The one output format of every probe.

/// Prints `NAME ok` or `NAME refused ERRNO` for one attempt.
pub fn outcome<T>(name: &str, r: std::io::Result<T>) {
    match r {
        Ok(_) => println!("{name} ok"),
        Err(e) => println!("{name} refused {}", e.raw_os_error().unwrap_or(-1)),
    }
}
