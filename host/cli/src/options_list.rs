//! `witm options`: every proxy option with its default and meaning, one
//! block each, like `mitmdump --options`. Read off the command line's own
//! definition, so it cannot fall behind it.

use clap::CommandFactory;
use witm::config::COMMAND_LINE_ONLY;

/// Prints each option of `C` (help and version left out): its flags, its
/// configuration key, its default and its help text.
pub(crate) fn print<C: CommandFactory>() {
    let mut command = C::command();
    // Built, so that every argument says how many values it takes.
    command.build();
    let mut out = String::new();
    for arg in command.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if matches!(long, "help" | "version") {
            continue;
        }
        let flags = match arg.get_short() {
            Some(short) => format!("-{short}, --{long}"),
            None => format!("--{long}"),
        };
        let takes_value = arg.get_num_args().is_some_and(|n| n.takes_values());
        let value = match (takes_value, arg.get_value_names()) {
            (false, _) => String::new(),
            (true, Some([name, ..])) => format!(" {name}"),
            (true, _) => format!(" {}", arg.get_id().as_str().to_uppercase()),
        };
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let default = match (defaults.is_empty(), takes_value) {
            (false, _) => defaults.join(", "),
            (true, false) => "off".to_owned(),
            (true, true) => "none".to_owned(),
        };
        let help = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        let key = long.replace('-', "_");
        let key = match COMMAND_LINE_ONLY.contains(&key.as_str()) {
            true => "none (command line only)".to_owned(),
            false => key,
        };
        out.push_str(&format!(
            "{flags}{value}\n    config key: {key}\n    default: {default}\n"
        ));
        for line in help.lines() {
            out.push_str(&format!("    {line}\n"));
        }
        out.push('\n');
    }
    out.push_str(
        "Each plugin's settings ([[plugins]] in --config: timeout_ms, memory_mb, fuel, failure,\n\
         instances, dirs, env, allowed_hosts, budgets …) are listed in the README's\n\
         \"Sandbox, limits, tenants\".\n",
    );
    print!("{out}");
}
