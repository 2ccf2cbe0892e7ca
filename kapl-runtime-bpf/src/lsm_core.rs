//! The BPF LSM layer's decision core, run without attaching (stage:
//! runtime, kernel enforcement; book/src/bpf-lsm.md).
//!
//! Input: one of the image's path DFAs ([`kapl_image::Dfa`], fs or exec),
//! laid out as the core's maps hold it ([`Tables`]), and requests (step,
//! right column, path bytes). Output: the grant the kernel's `decide()`
//! answers for each request, or `None` (`NO_GRANT`: refused).
//!
//! `bpf/lsm_core.bpf.c` holds `decide()`, which the LSM programs are to
//! call, exposed as the `SEC("syscall")` program `kapl_lsm_decide`. This
//! module loads that program as `BPF_PROG_TYPE_SYSCALL` (aya-obj 0.3 does
//! not know the section name: the object is parsed and relocated with
//! aya-obj and loaded with a raw `bpf(2)` call, as `src/unix.rs` does),
//! creates its maps at the sizes the C source declares, fills them from a
//! DFA and runs the program through `BPF_PROG_TEST_RUN` with the request
//! as `ctx_in`. No LSM program is loaded or attached here: this is what an
//! LSM kernel would run, verified and run on the real kernel, so that
//! `tests/lsm_core.rs` can compare it with [`kapl_image::Evaluator`].

use crate::bpf::BpfError;
use crate::sys;
use aya::maps::{Array, Map, MapData};
use aya_obj::Object;
use kapl_image::{Dfa, DfaKind, NO_GRANT};
use std::collections::HashSet;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lsm_core.bpf.o"));

/// `BPF_PROG_TYPE_SYSCALL`.
const PROG_TYPE_SYSCALL: u32 = 31;
/// The program's name in the object.
const PROG: &str = "kapl_lsm_decide";

/// The longest path a request carries (`LSM_PATH` in the C source).
pub const LSM_PATH: usize = 4096;
/// Entries of `lsm_next` (`MAX_NEXT`): states × classes at most.
pub const MAX_NEXT: u32 = 1 << 20;
/// Entries of `lsm_row` (`MAX_STATES`): states at most.
pub const MAX_STATES: u32 = 1 << 16;
/// Entries of `lsm_cells` (`MAX_CELLS`): rows × steps × rights at most.
pub const MAX_CELLS: u32 = 1 << 20;

/// The `lsm_meta` row (`struct lsm_meta`): the bounds `decide()` checks
/// every index against.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// The start state.
    pub start: u32,
    /// Number of byte classes.
    pub class_count: u32,
    /// Number of steps.
    pub steps: u32,
    /// Cells per step (4 for fs, 1 for exec).
    pub rights: u32,
    /// Number of states.
    pub states: u32,
    /// Number of accept rows.
    pub rows: u32,
}
// SAFETY: plain-old-data, six u32 (matches `struct lsm_meta`), no padding.
unsafe impl aya::Pod for Meta {}

/// One DFA as the core's maps hold it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tables {
    /// `lsm_meta[0]`.
    pub meta: Meta,
    /// `lsm_classes[0]`: byte → class.
    pub classes: [u8; 256],
    /// `lsm_next`: `states × class_count` next states, row-major.
    pub next: Vec<u32>,
    /// `lsm_row`: state → accept row.
    pub row: Vec<u32>,
    /// `lsm_cells`: `rows × steps × rights` grants (the cells' `grant`).
    pub cells: Vec<u32>,
}

fn too_large(kind: DfaKind, map: &'static str, needed: usize, max: u32) -> BpfError {
    BpfError::LsmTooLarge {
        kind: match kind {
            DfaKind::Fs => "fs",
            DfaKind::Exec => "exec",
        },
        map,
        needed,
        max,
    }
}

fn core_err(what: &str, e: impl std::fmt::Display) -> BpfError {
    BpfError::LsmCore(format!("{what}: {e}"))
}

impl Tables {
    /// `d` laid out exactly as [`Dfa`] holds it, the meta row saying the
    /// sizes it has; an error naming the map when it does not fit the
    /// core's maps (or when `d`'s own sizes disagree, which a validated
    /// image never has).
    pub fn of(d: &Dfa) -> Result<Tables, BpfError> {
        let states = d.states();
        let class_count = usize::from(d.class_count);
        if states > MAX_STATES as usize {
            return Err(too_large(d.kind, "lsm_row", states, MAX_STATES));
        }
        if d.transitions.len() > MAX_NEXT as usize {
            return Err(too_large(d.kind, "lsm_next", d.transitions.len(), MAX_NEXT));
        }
        if d.rows.len() > MAX_CELLS as usize {
            return Err(too_large(d.kind, "lsm_cells", d.rows.len(), MAX_CELLS));
        }
        let classes: [u8; 256] = d
            .classes
            .as_slice()
            .try_into()
            .map_err(|_| core_err("DFA", "the class table does not have 256 entries"))?;
        if d.transitions.len() != states * class_count {
            return Err(core_err(
                "DFA",
                "the transition table is not states × classes long",
            ));
        }
        // Bounded by MAX_* above: every size fits a u32.
        let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        Ok(Tables {
            meta: Meta {
                start: d.start,
                class_count: n(class_count),
                steps: d.steps,
                rights: n(d.kind.rights()),
                states: n(states),
                rows: n(d.row_count()),
            },
            classes,
            next: d.transitions.clone(),
            row: d.state_row.clone(),
            cells: d.rows.iter().map(|c| c.grant).collect(),
        })
    }
}

/// The loaded decision core: the program and its maps (descriptors,
/// closed when dropped).
pub struct LsmCore {
    prog: OwnedFd,
    meta: Array<MapData, Meta>,
    classes: Array<MapData, [u8; 256]>,
    next: Array<MapData, u32>,
    row: Array<MapData, u32>,
    cells: Array<MapData, u32>,
    _scratch: MapData,
}

/// Takes map `name` out of `maps` as an array of `V`.
fn array<V: aya::Pod>(
    maps: &mut Vec<(String, MapData)>,
    name: &str,
) -> Result<Array<MapData, V>, BpfError> {
    let i = maps
        .iter()
        .position(|(n, _)| n == name)
        .ok_or_else(|| core_err("map missing from lsm_core.bpf.o", name))?;
    let (_, data) = maps.swap_remove(i);
    Array::try_from(Map::Array(data)).map_err(|e| core_err(name, e))
}

impl LsmCore {
    /// Loads `kapl_lsm_decide` and creates its maps (empty: every request
    /// is refused until [`LsmCore::fill`]). Fails with the kernel's answer
    /// (and the verifier's last lines) when the kernel refuses.
    pub fn load() -> Result<LsmCore, BpfError> {
        let mut obj = Object::parse(OBJECT).map_err(|e| core_err("parse lsm_core.bpf.o", e))?;
        let btf = aya::Btf::from_sys_fs().map_err(|e| core_err("kernel BTF", e))?;
        obj.relocate_btf(&btf)
            .map_err(|e| core_err("BTF relocation", e))?;
        // The object's own BTF, loaded: the verifier needs the program's
        // func_info for the bpf_loop callback.
        let features =
            aya_obj::btf::BtfFeatures::new(true, true, true, true, true, true, true, true);
        let obj_btf = obj
            .fixup_and_sanitize_btf(&features)
            .map_err(|e| core_err("object BTF", e))?
            .map(aya_obj::btf::Btf::to_bytes)
            .ok_or_else(|| core_err("object BTF", "lsm_core.bpf.o has none"))?;
        let btf_fd =
            sys::bpf_btf_load(&obj_btf).map_err(|e| core_err("BPF_BTF_LOAD lsm_core.bpf.o", e))?;
        let mut owned: Vec<(String, MapData)> = Vec::new();
        for (name, def) in &obj.maps {
            // Created without BTF (a BTF-defined map needs the object's
            // BTF loaded): the same type and sizes, as a plain definition.
            let plain = aya_obj::Map::new_from_params(
                def.map_type(),
                def.key_size(),
                def.value_size(),
                def.max_entries(),
                def.map_flags(),
            );
            let data = MapData::create(plain, name, None)
                .map_err(|e| core_err(&format!("BPF_MAP_CREATE {name}"), e))?;
            owned.push((name.clone(), data));
        }
        let fds: Vec<(String, RawFd, aya_obj::Map)> = owned
            .iter()
            .filter_map(|(n, d)| {
                obj.maps
                    .get(n)
                    .map(|m| (n.clone(), d.fd().as_fd().as_raw_fd(), m.clone()))
            })
            .collect();
        let text: HashSet<usize> = obj.functions.keys().map(|(s, _)| *s).collect();
        obj.relocate_maps(fds.iter().map(|(n, fd, m)| (n.as_str(), *fd, m)), &text)
            .map_err(|e| core_err("map relocation", e))?;
        obj.relocate_calls(&text)
            .map_err(|e| core_err("call relocation", e))?;
        let p = obj
            .programs
            .get(PROG)
            .ok_or_else(|| core_err("program missing from lsm_core.bpf.o", PROG))?;
        let f = obj
            .functions
            .get(&p.function_key())
            .ok_or_else(|| core_err("function missing from lsm_core.bpf.o", PROG))?;
        let func_info = f.func_info.func_info_bytes();
        let pbtf = sys::ProgBtf {
            fd: btf_fd.as_fd(),
            func_info: &func_info,
            func_info_rec_size: u32::try_from(f.func_info_rec_size)
                .map_err(|e| core_err("func_info", e))?,
        };
        let prog = load_prog(&f.instructions, &pbtf)?;
        let meta = array(&mut owned, "lsm_meta")?;
        let classes = array(&mut owned, "lsm_classes")?;
        let next = array(&mut owned, "lsm_next")?;
        let row = array(&mut owned, "lsm_row")?;
        let cells = array(&mut owned, "lsm_cells")?;
        let (_, scratch) = owned
            .pop()
            .filter(|(n, _)| n == "lsm_scratch")
            .ok_or_else(|| core_err("maps of lsm_core.bpf.o", "not the six expected"))?;
        Ok(LsmCore {
            prog,
            meta,
            classes,
            next,
            row,
            cells,
            _scratch: scratch,
        })
    }

    /// Writes `t` into the maps: the arrays first, the meta row last. The
    /// meta row is written as given, true or not (the core must refuse
    /// what a lying one describes); an array longer than its map is an
    /// error. Entries past an array's end keep what they held.
    pub fn fill(&mut self, t: &Tables) -> Result<(), BpfError> {
        fn put(
            a: &mut Array<MapData, u32>,
            name: &'static str,
            v: &[u32],
            max: u32,
        ) -> Result<(), BpfError> {
            if v.len() > max as usize {
                return Err(core_err(
                    name,
                    format!("{} entries, the map holds {max}", v.len()),
                ));
            }
            for (i, x) in (0u32..).zip(v) {
                a.set(i, *x, 0).map_err(|e| core_err(name, e))?;
            }
            Ok(())
        }
        self.classes
            .set(0, t.classes, 0)
            .map_err(|e| core_err("lsm_classes", e))?;
        put(&mut self.next, "lsm_next", &t.next, MAX_NEXT)?;
        put(&mut self.row, "lsm_row", &t.row, MAX_STATES)?;
        put(&mut self.cells, "lsm_cells", &t.cells, MAX_CELLS)?;
        self.meta
            .set(0, t.meta, 0)
            .map_err(|e| core_err("lsm_meta", e))
    }

    /// [`Tables::of`] `d`, then [`LsmCore::fill`].
    pub fn fill_dfa(&mut self, d: &Dfa) -> Result<(), BpfError> {
        self.fill(&Tables::of(d)?)
    }

    /// Runs `decide()` once on (step, right column, path): the grant, or
    /// `None` when the core refuses. The request carries the path's true
    /// length and at most [`LSM_PATH`] of its bytes, so a longer path is
    /// refused by the core itself.
    pub fn decide(&self, step: u32, right: u32, path: &[u8]) -> Result<Option<u32>, BpfError> {
        let mut req = vec![0u8; 16 + LSM_PATH];
        let len = u32::try_from(path.len()).unwrap_or(u32::MAX);
        for (at, v) in [(0, step), (4, right), (8, len)] {
            req[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        }
        let n = path.len().min(LSM_PATH);
        req[16..16 + n].copy_from_slice(&path[..n]);
        let g = sys::bpf_prog_test_run_ctx(self.prog.as_fd(), &req)
            .map_err(|e| core_err("BPF_PROG_TEST_RUN kapl_lsm_decide", e))?;
        Ok((g != NO_GRANT).then_some(g))
    }
}

fn load_prog(
    insns: &[aya_obj::generated::bpf_insn],
    btf: &sys::ProgBtf<'_>,
) -> Result<OwnedFd, BpfError> {
    // A syscall program must be sleepable (the verifier refuses it
    // otherwise); decide() calls nothing that sleeps.
    sys::bpf_prog_load_explained(
        PROG_TYPE_SYSCALL,
        0,
        sys::BPF_F_SLEEPABLE,
        insns,
        PROG,
        Some(btf),
    )
    .map_err(|e| core_err(&format!("BPF_PROG_LOAD {PROG} (BPF_PROG_TYPE_SYSCALL)"), e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic, reason = "test assertions")]
    use super::*;

    #[test]
    fn a_dfa_too_large_for_the_maps_is_refused_naming_the_map() {
        let mut d = Dfa::empty(DfaKind::Fs, 1);
        let states = MAX_STATES as usize + 1;
        d.state_row = vec![0; states];
        d.transitions = vec![0; states];
        match Tables::of(&d) {
            Err(BpfError::LsmTooLarge { map, needed, .. }) => {
                assert_eq!((map, needed), ("lsm_row", states));
            }
            other => panic!("{other:?}"),
        }
        let mut d = Dfa::empty(DfaKind::Exec, 1);
        d.class_count = 256;
        d.state_row = vec![0; 4097];
        d.transitions = vec![0; 4097 * 256];
        let e = Tables::of(&d).map(|_| ()).map_err(|e| e.to_string());
        assert_eq!(
            e,
            Err(format!(
                "the BPF LSM decision core cannot hold the exec DFA: `lsm_next` needs {} entries and holds {MAX_NEXT}",
                4097 * 256
            ))
        );
        // One row of 300,000 steps × 4 rights: 1,200,000 cells.
        let d = Dfa::empty(DfaKind::Fs, 300_000);
        assert_eq!(d.rows.len(), 1_200_000);
        assert!(matches!(
            Tables::of(&d),
            Err(BpfError::LsmTooLarge {
                map: "lsm_cells",
                ..
            })
        ));
    }

    #[test]
    fn tables_hold_the_dfa_as_laid_out() {
        let d = Dfa::empty(DfaKind::Fs, 3);
        let t = Tables::of(&d).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            t.meta,
            Meta {
                start: 0,
                class_count: 1,
                steps: 3,
                rights: 4,
                states: 1,
                rows: 1
            }
        );
        assert_eq!((t.next, t.row), (vec![0], vec![0]));
        assert_eq!(t.cells, vec![NO_GRANT; 12]);
    }
}
