//! Fuzz target: the image reader must refuse or accept any bytes without
//! panicking, and whatever it accepts must validate and re-encode to the
//! same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(image) = kapl_image::read(data) {
        assert!(image.validate().is_ok());
        let again = kapl_image::write(&image);
        assert_eq!(again.as_deref().ok(), Some(data));
    }
});
