//! mitmproxy captures (tnetstring): any bytes give flows, skipped records
//! or an error, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut reader = witm_store::mitmproxy::MitmproxyReader::new(data);
    for _ in 0..1000 {
        match reader.next_flow() {
            Ok(Some(flow)) => {
                let _ = witm_store::format::flow_to_value(&flow);
            }
            Ok(None) | Err(_) => break,
        }
    }
});
