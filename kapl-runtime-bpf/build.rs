//! Build step: compiles the BPF programs in `bpf/*.bpf.c` with clang for the
//! BPF target. `vmlinux.h` is generated into OUT_DIR from the running
//! kernel's BTF with bpftool (never committed). Fails the build with a
//! message saying what to install when a tool is missing.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn fail(msg: &str) -> ! {
    eprintln!("error: kapl-runtime-bpf build: {msg}");
    std::process::exit(1);
}

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_else(|| fail("OUT_DIR is not set")));
    println!("cargo:rerun-if-changed=bpf");
    let vmlinux = out.join("vmlinux.h");
    let btf = env::var("KAPL_VMLINUX_BTF").unwrap_or_else(|_| "/sys/kernel/btf/vmlinux".into());
    println!("cargo:rerun-if-env-changed=KAPL_VMLINUX_BTF");
    let dump = Command::new("bpftool")
        .args(["btf", "dump", "file", &btf, "format", "c"])
        .output()
        .unwrap_or_else(|e| fail(&format!("cannot run bpftool ({e}); install it: apt-get install -y bpftool (or run scripts/setup)")));
    if !dump.status.success() {
        fail(&format!(
            "bpftool btf dump file {btf} failed: {}; the kernel needs CONFIG_DEBUG_INFO_BTF=y",
            String::from_utf8_lossy(&dump.stderr)
        ));
    }
    if let Err(e) = std::fs::write(&vmlinux, &dump.stdout) {
        fail(&format!("cannot write {}: {e}", vmlinux.display()));
    }
    let dir = PathBuf::from("bpf");
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| fail(&format!("cannot read bpf/: {e}")));
    let mut srcs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".bpf.c"))
        .collect();
    srcs.sort();
    for src in srcs {
        let stem = src
            .file_name()
            .and_then(|n| n.to_str())
            .map(|n| n.trim_end_matches(".bpf.c").to_string())
            .unwrap_or_else(|| fail("bad source name"));
        let obj = out.join(format!("{stem}.bpf.o"));
        let st = Command::new("clang")
            .args(["-O2", "-g", "-target", "bpf", "-D__TARGET_ARCH_x86", "-Wall", "-Werror"])
            .arg("-I")
            .arg(&out)
            .arg("-c")
            .arg(&src)
            .arg("-o")
            .arg(&obj)
            .status()
            .unwrap_or_else(|e| fail(&format!("cannot run clang ({e}); install it: apt-get install -y clang llvm libbpf-dev (or run scripts/setup)")));
        if !st.success() {
            fail(&format!("clang failed on {}", src.display()));
        }
    }
}
