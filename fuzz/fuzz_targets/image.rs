//! Fuzz target: the image reader must refuse or accept any bytes without
//! panicking, and whatever it accepts must validate and re-encode to the
//! same bytes.
//!
//! Random bytes almost never carry a valid SHA-256, so the reader would
//! only ever see its checksum check. Each input is therefore read twice:
//! as given, and "resealed" (length field and checksum recomputed over the
//! mutated bytes), so the section decoders and `Image::validate` see the
//! fuzzer's mutations too. Seeds in `fuzz/seeds/image/`: a small plan
//! image (`tiny.kapi`), an objective image (`objective.kapi`, from
//! `book/transcripts/web-objective.kapl`) and a plan image built against
//! it (`against.kapi`, from `book/transcripts/agent-plan.kapl`); rebuild
//! them when the format changes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

fn check(data: &[u8]) {
    if let Ok(image) = kapl_image::read(data) {
        assert!(image.validate().is_ok());
        let again = kapl_image::write(&image);
        assert_eq!(again.as_deref().ok(), Some(data));
    }
}

/// Header layout (see `kapl_image::format`): total length at 16..24,
/// checksum at 24..56 computed with those 32 bytes zeroed.
fn reseal(data: &[u8]) -> Option<Vec<u8>> {
    if data.len() < kapl_image::HEADER_LEN {
        return None;
    }
    let mut v = data.to_vec();
    let len = v.len() as u64;
    v[16..24].copy_from_slice(&len.to_le_bytes());
    v[24..56].fill(0);
    let sum = Sha256::digest(&v);
    v[24..56].copy_from_slice(&sum);
    Some(v)
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Some(v) = reseal(data) {
        check(&v);
    }
});
