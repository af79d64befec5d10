//! witm's own flow files: any bytes give flows or an error, never a panic
//! or an allocation beyond the reader's limits.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(reader) = witm_store::FlowReader::new(data) else {
        return;
    };
    for flow in reader.take(1000) {
        let Ok(flow) = flow else { break };
        // What was read can be written again.
        let mut writer = witm_store::FlowWriter::new(Vec::new()).unwrap();
        writer.write(&flow).unwrap();
    }
});
