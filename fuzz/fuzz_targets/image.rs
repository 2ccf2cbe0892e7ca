//! Fuzz target: the image reader must refuse or accept any bytes without
//! panicking, and whatever it accepts must validate and re-encode to the
//! same bytes.
//!
//! Random bytes almost never carry a valid SHA-256, so the reader would
//! only ever see its checksum check. Each input is therefore read twice:
//! as given, and "resealed" (length field and checksum recomputed over the
//! mutated bytes), so the section decoders and `Image::validate` see the
//! fuzzer's mutations too. Seed the corpus with real images
//! (`kaplc build tests/examples/deploy.kapl -o fuzz/corpus/image/deploy.kapi`).
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
    v[16..24].copy_from_slice(&(v.len() as u64).to_le_bytes());
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
