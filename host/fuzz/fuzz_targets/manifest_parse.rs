//! The manifest parser on arbitrary text: a manifest or an error, never a panic.
#![no_main]

use eddy::manifest::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = Manifest::role_reference(text);
    let _ = Manifest::parse(text);
});
