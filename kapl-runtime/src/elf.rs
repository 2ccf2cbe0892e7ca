//! What the kernel runs before a program (stage: runtime and build, pure):
//! the ELF `PT_INTERP` loader or a script's `#!` interpreter.
//!
//! Input: the first bytes of a file (untrusted: any length, any content).
//! Output: a [`Starter`]: the loader an ELF program names, the interpreter
//! a script's first line names, or neither. Every read is bounds-checked;
//! nothing here panics on malformed input (the fuzz target and the unit
//! tests feed it truncated and hostile headers). The kernel asks Landlock
//! for the execute right on each of them, so a step that may run a program
//! but not its loader or interpreter cannot run it: the runtime names them
//! in the denial and `kaplc build` warns.

/// How many bytes of a file [`starter`] looks at at most: the ELF header,
/// its program headers and the `PT_INTERP` string sit in the first page of
/// every program in practice; a header that points further is reported as
/// [`ElfError::Truncated`], never guessed.
pub const HEAD_MAX: usize = 64 * 1024;

/// The longest `#!` line the kernel reads (`BINPRM_BUF_SIZE`).
const SHEBANG_MAX: usize = 256;

/// What the kernel starts before the program itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Starter {
    /// An ELF program; `Some` loader when dynamically linked (`PT_INTERP`).
    Elf(Option<Vec<u8>>),
    /// A script: the interpreter its `#!` line names (and the line's
    /// optional argument).
    Script {
        /// The interpreter's path as written.
        interpreter: Vec<u8>,
        /// The one optional argument.
        arg: Option<Vec<u8>>,
    },
    /// Neither an ELF file nor a `#!` script.
    Other,
}

impl Starter {
    /// The loader or interpreter, if any.
    pub fn path(&self) -> Option<&[u8]> {
        match self {
            Starter::Elf(Some(p)) => Some(p),
            Starter::Script { interpreter, .. } => Some(interpreter),
            Starter::Elf(None) | Starter::Other => None,
        }
    }

    /// What to call it in a message: "loader" or "interpreter".
    pub fn role(&self) -> &'static str {
        match self {
            Starter::Script { .. } => "interpreter",
            _ => "loader",
        }
    }
}

/// Why an ELF file's loader could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ElfError {
    /// A header, a program header or the loader's name lies beyond the
    /// bytes given.
    #[error("the ELF file is truncated (a header points past its first {0} bytes)")]
    Truncated(usize),
    /// A field has a value no valid file has.
    #[error("malformed ELF file: {0}")]
    Malformed(&'static str),
}

const PT_INTERP: u32 = 3;

/// Reads what `head` (the first bytes of a file, up to [`HEAD_MAX`]) says
/// the kernel starts first.
pub fn starter(head: &[u8]) -> Result<Starter, ElfError> {
    if head.starts_with(b"\x7fELF") {
        return elf_interp(head).map(Starter::Elf);
    }
    if let Some(rest) = head.strip_prefix(b"#!") {
        return Ok(shebang(rest));
    }
    Ok(Starter::Other)
}

/// The `#!` line after the `#!`: leading blanks skipped, the interpreter up
/// to the next blank, the rest (trimmed) its one argument, as the kernel's
/// `binfmt_script` splits it.
fn shebang(rest: &[u8]) -> Starter {
    let line_end = rest
        .iter()
        .position(|b| *b == b'\n')
        .unwrap_or(rest.len())
        .min(SHEBANG_MAX - 2);
    let line = rest.get(..line_end).unwrap_or_default();
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let line = trim(line, blank);
    let cut = line.iter().position(blank).unwrap_or(line.len());
    let (interp, tail) = line.split_at(cut);
    if interp.is_empty() {
        return Starter::Other;
    }
    let arg = trim(tail, blank);
    Starter::Script {
        interpreter: interp.to_vec(),
        arg: (!arg.is_empty()).then(|| arg.to_vec()),
    }
}

fn trim(s: &[u8], blank: impl Fn(&u8) -> bool) -> &[u8] {
    let start = s.iter().position(|b| !blank(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !blank(b)).map_or(start, |e| e + 1);
    s.get(start..end).unwrap_or_default()
}

/// Little- or big-endian reads of the fields of one ELF class.
struct Reader<'a> {
    b: &'a [u8],
    big: bool,
    wide: bool,
}

impl Reader<'_> {
    fn bytes<const N: usize>(&self, at: usize) -> Result<[u8; N], ElfError> {
        let end = at
            .checked_add(N)
            .ok_or(ElfError::Malformed("offset overflows"))?;
        self.b
            .get(at..end)
            .and_then(|s| s.try_into().ok())
            .ok_or(ElfError::Truncated(self.b.len()))
    }
    fn u16(&self, at: usize) -> Result<u16, ElfError> {
        let a = self.bytes::<2>(at)?;
        Ok(if self.big {
            u16::from_be_bytes(a)
        } else {
            u16::from_le_bytes(a)
        })
    }
    fn u32(&self, at: usize) -> Result<u32, ElfError> {
        let a = self.bytes::<4>(at)?;
        Ok(if self.big {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        })
    }
    /// An address-sized field (`Elf32_Off` or `Elf64_Off`).
    fn off(&self, at: usize) -> Result<usize, ElfError> {
        let v = if self.wide {
            let a = self.bytes::<8>(at)?;
            if self.big {
                u64::from_be_bytes(a)
            } else {
                u64::from_le_bytes(a)
            }
        } else {
            u64::from(self.u32(at)?)
        };
        usize::try_from(v).map_err(|_| ElfError::Malformed("offset too large"))
    }
}

/// The `PT_INTERP` string of an ELF file (`None`: statically linked).
fn elf_interp(head: &[u8]) -> Result<Option<Vec<u8>>, ElfError> {
    let class = *head.get(4).ok_or(ElfError::Truncated(head.len()))?;
    let data = *head.get(5).ok_or(ElfError::Truncated(head.len()))?;
    let wide = match class {
        1 => false,
        2 => true,
        _ => return Err(ElfError::Malformed("unknown class")),
    };
    let big = match data {
        1 => false,
        2 => true,
        _ => return Err(ElfError::Malformed("unknown byte order")),
    };
    let r = Reader { b: head, big, wide };
    // (e_phoff, e_phentsize, e_phnum) offsets; program header field offsets
    // (p_offset, p_filesz) and the smallest program header size.
    let (phoff_at, phentsize_at, phnum_at, p_offset_at, p_filesz_at, min_ent) = if wide {
        (0x20, 0x36, 0x38, 8, 32, 56)
    } else {
        (0x1c, 0x2a, 0x2c, 4, 16, 32)
    };
    let phoff = r.off(phoff_at)?;
    let phentsize = usize::from(r.u16(phentsize_at)?);
    let phnum = usize::from(r.u16(phnum_at)?);
    if phnum == 0 {
        return Ok(None);
    }
    if phentsize < min_ent {
        return Err(ElfError::Malformed("program header entries too small"));
    }
    for i in 0..phnum {
        let at = i
            .checked_mul(phentsize)
            .and_then(|x| x.checked_add(phoff))
            .ok_or(ElfError::Malformed("program header offset overflows"))?;
        if r.u32(at)? != PT_INTERP {
            continue;
        }
        let field = |f: usize| {
            at.checked_add(f)
                .ok_or(ElfError::Malformed("offset overflows"))
        };
        let off = r.off(field(p_offset_at)?)?;
        let size = r.off(field(p_filesz_at)?)?;
        if size == 0 || size > 4096 {
            return Err(ElfError::Malformed("loader name of impossible length"));
        }
        let end = off
            .checked_add(size)
            .ok_or(ElfError::Malformed("loader name offset overflows"))?;
        let name = head.get(off..end).ok_or(ElfError::Truncated(head.len()))?;
        let name = name.split(|b| *b == 0).next().unwrap_or_default();
        if name.is_empty() {
            return Err(ElfError::Malformed("empty loader name"));
        }
        return Ok(Some(name.to_vec()));
    }
    Ok(None)
}

/// Reads files for [`refused_starter`] (the edge: the runtime and the
/// compiler read the live file system, tests give bytes).
pub trait Files {
    /// The first bytes (up to [`HEAD_MAX`]) of the regular file `path`
    /// resolves to; `None` when it cannot be read.
    fn head(&self, path: &[u8]) -> Option<Vec<u8>>;
}

/// A loader or interpreter the kernel would start and the step may not
/// execute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// Its path as named (the `PT_INTERP` string or the `#!` path).
    pub path: Vec<u8>,
    /// "loader" or "interpreter".
    pub role: &'static str,
    /// The file that names it: the program, or an interpreter before it.
    pub of: Vec<u8>,
}

impl Refused {
    /// `its loader /lib64/ld-linux-x86-64.so.2` or `the loader … of its
    /// interpreter /usr/bin/python3.11` (`program`: the program run).
    pub fn describe(&self, program: &[u8]) -> String {
        let p = String::from_utf8_lossy(&self.path);
        if self.of == program {
            format!("its {} {p}", self.role)
        } else {
            format!(
                "the {} {p} of its interpreter {}",
                self.role,
                String::from_utf8_lossy(&self.of)
            )
        }
    }

    /// How to grant it.
    pub fn help(&self) -> String {
        if self.role == "loader" {
            "`use runtime.loader` grants it".into()
        } else {
            format!(
                "grant it: `exec \"{}\"`",
                String::from_utf8_lossy(&self.path)
            )
        }
    }
}

/// The first loader or interpreter on the chain the kernel starts for
/// `program` (its `PT_INTERP` or `#!` path, then theirs, at most four
/// deep) that `may_execute` refuses; `None` when every one is allowed or
/// a file cannot be read or parsed (nothing is guessed).
pub fn refused_starter(
    program: &[u8],
    files: &dyn Files,
    may_execute: &mut dyn FnMut(&[u8]) -> bool,
) -> Option<Refused> {
    let mut cur = program.to_vec();
    for _ in 0..4 {
        let head = files.head(&cur)?;
        let st = starter(&head).ok()?;
        let next = st.path()?.to_vec();
        if !may_execute(&next) {
            return Some(Refused {
                path: next,
                role: st.role(),
                of: cur,
            });
        }
        cur = next;
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::panic,
        clippy::unwrap_used,
        reason = "a test fails by panicking"
    )]
    use super::*;

    /// A minimal 64-bit little-endian ELF header with one `PT_LOAD` and one
    /// `PT_INTERP` program header naming `interp`.
    fn elf64(interp: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 2 * 56];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
        // PT_LOAD first.
        b[64..68].copy_from_slice(&1u32.to_le_bytes());
        let ph = 64 + 56;
        b[ph..ph + 4].copy_from_slice(&PT_INTERP.to_le_bytes());
        let off = b.len() as u64;
        b[ph + 8..ph + 16].copy_from_slice(&off.to_le_bytes());
        b[ph + 32..ph + 40].copy_from_slice(&(interp.len() as u64 + 1).to_le_bytes());
        b.extend_from_slice(interp);
        b.push(0);
        b
    }

    /// The same as a 32-bit big-endian file.
    fn elf32be(interp: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 52 + 32];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 1;
        b[5] = 2;
        b[0x1c..0x20].copy_from_slice(&52u32.to_be_bytes());
        b[0x2a..0x2c].copy_from_slice(&32u16.to_be_bytes());
        b[0x2c..0x2e].copy_from_slice(&1u16.to_be_bytes());
        b[52..56].copy_from_slice(&PT_INTERP.to_be_bytes());
        let off = b.len() as u32;
        b[56..60].copy_from_slice(&off.to_be_bytes());
        b[68..72].copy_from_slice(&(interp.len() as u32).to_be_bytes());
        b.extend_from_slice(interp);
        b
    }

    const LD: &[u8] = b"/lib64/ld-linux-x86-64.so.2";

    #[test]
    fn the_loader_of_an_elf_file_of_either_class_and_order() {
        assert_eq!(starter(&elf64(LD)), Ok(Starter::Elf(Some(LD.to_vec()))));
        assert_eq!(
            starter(&elf32be(b"/lib/ld.so.1")),
            Ok(Starter::Elf(Some(b"/lib/ld.so.1".to_vec())))
        );
        // No PT_INTERP: statically linked.
        let mut s = elf64(LD);
        s[64 + 56..64 + 60].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(starter(&s), Ok(Starter::Elf(None)));
    }

    #[test]
    fn every_truncation_of_an_elf_file_is_an_error_or_an_answer_never_a_panic() {
        let full = elf64(LD);
        for n in 0..full.len() {
            let r = starter(&full[..n]);
            assert!(
                matches!(r, Err(ElfError::Truncated(_)) | Ok(Starter::Other)),
                "{n}: {r:?}"
            );
        }
    }

    #[test]
    fn malformed_fields_are_errors() {
        let mut b = elf64(LD);
        b[4] = 9;
        assert_eq!(starter(&b), Err(ElfError::Malformed("unknown class")));
        let mut b = elf64(LD);
        b[0x36..0x38].copy_from_slice(&8u16.to_le_bytes());
        assert!(matches!(starter(&b), Err(ElfError::Malformed(_))));
        // A program header table at the end of the address space.
        let mut b = elf64(LD);
        b[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(starter(&b).is_err());
        // A loader name far past the bytes given, or absurdly long.
        let mut b = elf64(LD);
        let ph = 64 + 56;
        b[ph + 8..ph + 16].copy_from_slice(&(u64::MAX - 2).to_le_bytes());
        assert!(starter(&b).is_err());
        let mut b = elf64(LD);
        b[ph + 32..ph + 40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(starter(&b).is_err());
        // 65535 program headers of which the bytes hold two.
        let mut b = elf64(LD);
        b[64 + 56..64 + 60].copy_from_slice(&1u32.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(matches!(starter(&b), Err(ElfError::Truncated(_))));
    }

    #[test]
    fn arbitrary_bytes_after_the_magic_never_panic() {
        // A small deterministic sweep (the fuzz target does the rest).
        let mut x: u32 = 0x1234_5678;
        for len in [5usize, 16, 63, 64, 65, 120, 200] {
            for _ in 0..500 {
                let mut b = b"\x7fELF".to_vec();
                for _ in 4..len {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    b.push(x as u8);
                }
                let _ = starter(&b);
            }
        }
    }

    struct Mem(Vec<(&'static [u8], Vec<u8>)>);
    impl Files for Mem {
        fn head(&self, path: &[u8]) -> Option<Vec<u8>> {
            self.0
                .iter()
                .find(|(p, _)| *p == path)
                .map(|(_, b)| b.clone())
        }
    }

    #[test]
    fn the_first_starter_the_step_may_not_execute_is_named() {
        let files = Mem(vec![
            (b"/s", b"#!/py\n".to_vec()),
            (b"/py", elf64(LD)),
            (b"/prog", elf64(LD)),
            (b"/static", elf64(b"")[..64].to_vec()),
        ]);
        let only = |ok: &'static [&'static [u8]]| move |p: &[u8]| ok.contains(&p);
        let r = refused_starter(b"/s", &files, &mut only(&[b"/py"])).unwrap();
        assert_eq!(
            r.describe(b"/s"),
            format!(
                "the loader {} of its interpreter /py",
                String::from_utf8_lossy(LD)
            )
        );
        assert!(r.help().contains("runtime.loader"));
        let r = refused_starter(b"/s", &files, &mut only(&[LD])).unwrap();
        assert_eq!(r.describe(b"/s"), "its interpreter /py");
        assert_eq!(r.help(), "grant it: `exec \"/py\"`");
        assert_eq!(
            refused_starter(b"/s", &files, &mut only(&[LD, b"/py"])),
            None
        );
        assert_eq!(refused_starter(b"/prog", &files, &mut only(&[LD])), None);
        assert_eq!(refused_starter(b"/missing", &files, &mut only(&[])), None);
        // A script whose interpreter is itself: the chain stops.
        let files = Mem(vec![(b"/loop", b"#!/loop\n".to_vec())]);
        assert_eq!(
            refused_starter(b"/loop", &files, &mut only(&[b"/loop"])),
            None
        );
    }

    #[test]
    fn a_shebang_line_names_its_interpreter_and_argument() {
        let s = |b: &[u8]| starter(b).ok();
        assert_eq!(
            s(b"#!/bin/sh\necho hi\n"),
            Some(Starter::Script {
                interpreter: b"/bin/sh".to_vec(),
                arg: None
            })
        );
        assert_eq!(
            s(b"#! /usr/bin/env  python3 -u \n"),
            Some(Starter::Script {
                interpreter: b"/usr/bin/env".to_vec(),
                arg: Some(b"python3 -u".to_vec())
            })
        );
        assert_eq!(s(b"#!\n"), Some(Starter::Other));
        assert_eq!(s(b"#!   "), Some(Starter::Other));
        assert_eq!(s(b"echo hi\n"), Some(Starter::Other));
        assert_eq!(s(b""), Some(Starter::Other));
        assert_eq!(
            s(b"#!/bin/sh").and_then(|x| x.path().map(<[u8]>::to_vec)),
            Some(b"/bin/sh".to_vec())
        );
        // The kernel reads 256 bytes: an interpreter past that is cut.
        let mut long = b"#!/".to_vec();
        long.extend(std::iter::repeat_n(b'a', 400));
        let Some(Starter::Script { interpreter, .. }) = s(&long) else {
            panic!("not a script");
        };
        assert_eq!(interpreter.len(), SHEBANG_MAX - 2);
    }
}
