//! The sentence both faces put after an error that says what can be done about it: each face
//! words the remedies (flags and commands, or tool arguments and tool calls), this joins them.

/// `message`, then `To go on, a, or b.` from the clauses `clause` gives for `remedies`
/// (the message alone when there are none).
pub fn advised(
    message: &str,
    remedies: &[fleet::Remedy],
    clause: impl Fn(&fleet::Remedy) -> String,
) -> String {
    if remedies.is_empty() {
        return message.to_string();
    }
    let clauses: Vec<String> = remedies.iter().map(clause).collect();
    let stop = if message.ends_with(['.', '?']) {
        ""
    } else {
        "."
    };
    format!("{message}{stop} To go on, {}.", clauses.join(", or "))
}
