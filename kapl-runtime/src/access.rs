//! Landlock access bits: the uapi values shared with the image
//! (`kapl_image::access`), plus the groupings and names the runtime needs.

pub use kapl_image::access::*;

/// Rights that apply to a file itself (allowed in a rule on a file).
pub const FILE: u64 = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV;
/// Rights checked on the parent directory of the object.
pub const PARENT: u64 = REMOVE_DIR
    | REMOVE_FILE
    | MAKE_CHAR
    | MAKE_DIR
    | MAKE_REG
    | MAKE_SOCK
    | MAKE_FIFO
    | MAKE_BLOCK
    | MAKE_SYM
    | REFER;
/// Every right of ABI 7.
pub const ALL: u64 = ALL_ABI7;

/// The names the kernel's audit records use (`blockers=fs.NAME`).
pub fn name(bit: u64) -> &'static str {
    match bit {
        EXECUTE => "execute",
        WRITE_FILE => "write_file",
        READ_FILE => "read_file",
        READ_DIR => "read_dir",
        REMOVE_DIR => "remove_dir",
        REMOVE_FILE => "remove_file",
        MAKE_CHAR => "make_char",
        MAKE_DIR => "make_dir",
        MAKE_REG => "make_reg",
        MAKE_SOCK => "make_sock",
        MAKE_FIFO => "make_fifo",
        MAKE_BLOCK => "make_block",
        MAKE_SYM => "make_sym",
        REFER => "refer",
        TRUNCATE => "truncate",
        IOCTL_DEV => "ioctl_dev",
        _ => "?",
    }
}

/// The bit for an audit blocker name.
pub fn from_name(n: &str) -> Option<u64> {
    (0..16).map(|i| 1u64 << i).find(|b| name(*b) == n)
}

/// The names of every bit set in `bits`, lowest first.
pub fn names(bits: u64) -> Vec<&'static str> {
    (0..16)
        .map(|i| 1u64 << i)
        .filter(|b| bits & b != 0)
        .map(name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for i in 0..16 {
            let b = 1u64 << i;
            assert_eq!(from_name(name(b)), Some(b), "bit {i}");
        }
        assert_eq!(from_name("nosuch"), None);
        assert_eq!(names(READ_FILE | EXECUTE), ["execute", "read_file"]);
    }
}
