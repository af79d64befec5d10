//! HAR import: any bytes give flows or an error, never a panic; what was
//! imported can be exported again.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(flows) = witm_store::har::import(data) {
        let _ = witm_store::har::export(&flows);
    }
});
