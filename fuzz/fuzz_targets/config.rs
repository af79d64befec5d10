//! The configuration: any TOML text, with `--set key=value` lines after a
//! line `--set`, is read into a configuration or refused with an error,
//! never a panic. (The options it sets then go to the command-line parser,
//! clap, as arguments.)
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (file, sets) = text.split_once("\n--set\n").unwrap_or((text, ""));
    let sets: Vec<String> = sets.lines().map(str::to_owned).collect();
    let _ = witm::config::from_text(file, &[], &sets);
});
