//! Template parameters of a start build: where each value comes from and whether Coder will
//! accept it — decided before any build is created.
//!
//! Values come from, in order: the values the caller gives (`--parameter`, MCP `parameters`),
//! then a parameters file, then the previous build (ephemeral parameters are never carried
//! over), then the parameter's default. Every value is then checked against the target
//! version's rules (type, options, min/max, regex, monotonic, immutability), the way Coder
//! checks them when the start build is created — so a value Coder would refuse stops the
//! command before the workspace is stopped.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{MonotonicOrder, ParameterType, types};
use crate::{Error, Input, Remedy, Result};

/// Where a resolved parameter value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParameterSource {
    /// Given by the caller: `--parameter NAME=VALUE` or the MCP `parameters` argument.
    Given,
    /// Read from `--parameters-file`.
    File,
    /// Carried over from the workspace's previous build.
    PreviousBuild,
    /// The parameter's default in the target template version.
    Default,
}

impl std::fmt::Display for ParameterSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ParameterSource::Given => "given",
            ParameterSource::File => "parameters file",
            ParameterSource::PreviousBuild => "previous build",
            ParameterSource::Default => "default",
        })
    }
}

/// A parameter value the start build will send, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ResolvedParameter {
    /// The parameter's name.
    pub name: String,
    /// The value sent.
    pub value: String,
    /// Where the value came from.
    pub source: ParameterSource,
    /// The previous build's value, when it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_value: Option<String>,
}

/// A value Coder would refuse: which parameter, what is wrong, what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ParameterProblem {
    /// The parameter's name.
    pub name: String,
    /// The value that was refused (none when a required value is missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Where that value came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<ParameterSource>,
    /// What is wrong.
    pub problem: String,
    /// What is allowed instead.
    pub allowed: String,
}

impl std::fmt::Display for ParameterProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "parameter {:?}", self.name)?;
        if let Some(v) = &self.value {
            write!(f, " = {v:?}")?;
        }
        if let Some(s) = &self.source {
            write!(f, " ({s})")?;
        }
        write!(f, ": {}; allowed: {}", self.problem, self.allowed)
    }
}

/// Parses `NAME=VALUE` (the value may be empty and may contain `=`).
pub fn parse_parameter_assignment(text: &str) -> Result<(String, String)> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.to_string()))
        }
        _ => Err(Error::InvalidInput(format!(
            "{text:?} is not a parameter assignment: write NAME=VALUE, e.g. cpu=8; nothing was sent"
        ))),
    }
}

/// Turns a JSON value into a parameter value: strings as they are, numbers and booleans as
/// their text, a list of strings as the JSON list Coder expects for `list(string)`.
pub fn parameter_value_from_json(name: &str, value: &serde_json::Value) -> Result<String> {
    use serde_json::Value;
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Array(items) if items.iter().all(Value::is_string) => {
            Ok(serde_json::to_string(items).unwrap_or_default())
        }
        other => Err(Error::InvalidInput(format!(
            "the value of parameter {name:?} is {other}: give a string, a number, true/false, or a list \
             of strings; nothing was sent"
        ))),
    }
}

/// Turns a JSON object `{name: value}` into parameter values (see [`parameter_value_from_json`]).
pub fn parameters_from_json(
    map: &serde_json::Map<String, serde_json::Value>,
) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (name, value) in map {
        if name.trim().is_empty() {
            return Err(Error::InvalidInput(
                "a parameter name is empty; nothing was sent".into(),
            ));
        }
        out.insert(
            name.trim().to_string(),
            parameter_value_from_json(name, value)?,
        );
    }
    Ok(out)
}

/// The deepest nesting of lists and maps a parameters file may have.
pub const MAX_PARAMETERS_FILE_DEPTH: usize = 64;

/// The line at which YAML or JSON `text` may be nested deeper than `limit`, or `None`. One
/// pass, linear in the text: it counts flow collections (`[`, `{` outside quoted scalars and
/// comments) and block levels (increasing indentation, `- ` and `? ` entries on one line). It
/// may count more than the parser would (a bracket inside a plain or block scalar), never less.
pub fn nested_deeper_than(text: &str, limit: usize) -> Option<usize> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    let mut quote: Option<char> = None;
    for (n, line) in text.split('\n').enumerate() {
        let mut block = indents.len();
        if quote.is_none() && flow == 0 {
            let body = line.trim_start_matches(' ');
            let indent = line.len() - body.len();
            let body = body.trim_end_matches('\r');
            if !body.is_empty() && !body.starts_with('#') {
                while indents.last().is_some_and(|&i| i >= indent) {
                    indents.pop();
                }
                indents.push(indent);
                block = indents.len();
                if block > limit {
                    return Some(n + 1);
                }
            }
        }
        // The last character on this line that was not a space, outside quotes.
        let mut last: Option<char> = None;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match quote {
                Some('"') => {
                    if c == '\\' {
                        chars.next();
                    } else if c == '"' {
                        quote = None;
                        last = Some(c);
                    }
                    continue;
                }
                Some(_) => {
                    if c == '\'' {
                        if chars.peek() == Some(&'\'') {
                            chars.next();
                        } else {
                            quote = None;
                            last = Some(c);
                        }
                    }
                    continue;
                }
                None => {}
            }
            match c {
                ' ' | '\t' | '\r' => {
                    if chars.peek() == Some(&'#') {
                        break;
                    }
                    continue;
                }
                '#' if last.is_none() => break,
                '"' | '\'' if matches!(last, None | Some('[' | '{' | ',' | ':' | '-' | '?')) => {
                    quote = Some(c);
                }
                '[' | '{' => {
                    flow += 1;
                    if block + flow > limit {
                        return Some(n + 1);
                    }
                }
                ']' | '}' => flow = flow.saturating_sub(1),
                // `- ` or `? ` where a node starts: one more level on the same line (`- - x`).
                '-' | '?'
                    if flow == 0
                        && matches!(last, None | Some('-' | '?'))
                        && matches!(chars.peek(), Some(' ' | '\t') | None) =>
                {
                    block += 1;
                    if block > limit {
                        return Some(n + 1);
                    }
                }
                _ => {}
            }
            last = Some(c);
        }
    }
    None
}

/// Reads a parameters file: a YAML or JSON map of `name: value` (JSON when the file name ends
/// in `.json`, else YAML, which also reads JSON). `origin` names the file in messages.
pub fn parse_parameters_file(text: &str, origin: &str) -> Result<BTreeMap<String, String>> {
    // The YAML parser's time grows with the square of the nesting depth (100,000 levels took
    // 20 s): a file nested deeper than any parameters file needs is refused before parsing.
    if let Some(line) = nested_deeper_than(text, MAX_PARAMETERS_FILE_DEPTH) {
        return Err(Error::InvalidInput(format!(
            "{origin} is nested more than {MAX_PARAMETERS_FILE_DEPTH} levels deep (at line \
             {line}): a parameters file is a map of names to values; nothing was sent"
        )));
    }
    let json = origin.to_ascii_lowercase().ends_with(".json");
    let value: serde_json::Value = if json {
        serde_json::from_str(text).map_err(|e| {
            Error::InvalidInput(format!("{origin} is not valid JSON: {e}; nothing was sent"))
        })?
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| {
            Error::InvalidInput(format!("{origin} is not valid YAML: {e}; nothing was sent"))
        })?
    };
    match value {
        serde_json::Value::Object(map) => parameters_from_json(&map).map_err(|e| match e {
            Error::InvalidInput(m) => Error::InvalidInput(format!("{origin}: {m}")),
            other => other,
        }),
        serde_json::Value::Null => Ok(BTreeMap::new()),
        _ => Err(Error::InvalidInput(format!(
            "{origin} must be a map of parameter names to values (e.g. `cpu: 8`); nothing was sent"
        ))),
    }
}

fn is_bool(v: &str) -> bool {
    // Go's strconv.ParseBool, which Coder uses.
    matches!(
        v,
        "1" | "t" | "T" | "TRUE" | "true" | "True" | "0" | "f" | "F" | "FALSE" | "false" | "False"
    )
}

fn list_of_strings(v: &str) -> Option<Vec<String>> {
    serde_json::from_str::<Vec<String>>(v).ok()
}

fn option_values(p: &types::TemplateVersionParameter) -> Vec<String> {
    p.options.iter().filter_map(|o| o.value.clone()).collect()
}

fn has_range(p: &types::TemplateVersionParameter) -> bool {
    p.validation_min.is_some() || p.validation_max.is_some() || p.validation_monotonic.is_some()
}

fn regex_of(p: &types::TemplateVersionParameter) -> Option<&str> {
    p.validation_regex.as_deref().filter(|r| !r.is_empty())
}

/// What a parameter accepts, in words.
pub fn allowed_values(p: &types::TemplateVersionParameter, previous: Option<&str>) -> String {
    let options = option_values(p);
    let kind = p.type_.clone().unwrap_or(ParameterType::String);
    let mut parts = Vec::new();
    if !options.is_empty() {
        if kind == ParameterType::ListOfString {
            parts.push(format!(
                "a JSON list whose items are among: {}",
                options.join(", ")
            ));
        } else {
            parts.push(format!("one of: {}", options.join(", ")));
        }
    } else {
        match &kind {
            ParameterType::Number => {
                let whole = if has_range(p) {
                    "a whole number"
                } else {
                    "a number"
                };
                parts.push(match (p.validation_min, p.validation_max) {
                    (Some(lo), Some(hi)) => format!("{whole} from {lo} to {hi}"),
                    (Some(lo), None) => format!("{whole} ≥ {lo}"),
                    (None, Some(hi)) => format!("{whole} ≤ {hi}"),
                    (None, None) => whole.to_string(),
                });
            }
            ParameterType::Bool => parts.push("true or false".into()),
            ParameterType::ListOfString => {
                parts.push("a JSON list of strings, e.g. [\"a\",\"b\"]".into())
            }
            _ => match regex_of(p) {
                Some(r) => parts.push(format!("text matching the regular expression /{r}/")),
                None => parts.push("any text".into()),
            },
        }
    }
    match (
        &p.validation_monotonic,
        previous.and_then(|v| v.trim().parse::<i64>().ok()),
    ) {
        (Some(MonotonicOrder::Increasing), Some(prev)) => parts.push(format!(
            "no less than the previous value {prev} (it can only grow)"
        )),
        (Some(MonotonicOrder::Decreasing), Some(prev)) => parts.push(format!(
            "no more than the previous value {prev} (it can only shrink)"
        )),
        _ => {}
    }
    if p.mutable == Some(false) {
        if let Some(prev) = previous {
            parts.push(format!(
                "only the current value {prev:?} (the parameter is immutable)"
            ));
        }
    }
    let mut text = parts.join(", ");
    if let Some(msg) = p
        .validation_error
        .as_deref()
        .filter(|m| !m.trim().is_empty())
    {
        text.push_str(&format!(
            " (the template says: {})",
            substitute(msg, p, None)
        ));
    }
    text
}

fn substitute(msg: &str, p: &types::TemplateVersionParameter, value: Option<&str>) -> String {
    let mut m = msg.to_string();
    if let Some(lo) = p.validation_min {
        m = m.replace("{min}", &lo.to_string());
    }
    if let Some(hi) = p.validation_max {
        m = m.replace("{max}", &hi.to_string());
    }
    if let Some(v) = value {
        m = m.replace("{value}", v);
    }
    m
}

/// Checks one value against a parameter's rules; `None` when Coder would accept it.
fn check_value(
    p: &types::TemplateVersionParameter,
    value: &str,
    previous: Option<&str>,
) -> Option<String> {
    let kind = p.type_.clone().unwrap_or(ParameterType::String);
    // Type.
    match &kind {
        ParameterType::Number => {
            let ok = if has_range(p) {
                value.trim().parse::<i64>().is_ok()
            } else {
                value.trim().parse::<f64>().is_ok_and(f64::is_finite)
            };
            if !ok {
                return Some(if has_range(p) {
                    "is not a whole number".into()
                } else {
                    "is not a number".into()
                });
            }
        }
        ParameterType::Bool if !is_bool(value) => return Some("is not true or false".into()),
        ParameterType::ListOfString if list_of_strings(value).is_none() => {
            return Some("is not a JSON list of strings".into());
        }
        _ => {}
    }
    // Options.
    let options = option_values(p);
    if !options.is_empty() {
        if kind == ParameterType::ListOfString {
            let items = list_of_strings(value).unwrap_or_default();
            if let Some(bad) = items.iter().find(|i| !options.contains(i)) {
                return Some(format!("has {bad:?}, which is not one of the options"));
            }
        } else if !options.iter().any(|o| o == value) {
            return Some("is not one of the options".into());
        }
    }
    // Immutable.
    if p.mutable == Some(false) && previous.is_some_and(|prev| prev != value) {
        return Some(format!(
            "would change the immutable parameter from {:?}",
            previous.unwrap_or_default()
        ));
    }
    // Range and monotonic (numbers).
    if kind == ParameterType::Number {
        if let Ok(n) = value.trim().parse::<i64>() {
            if let Some(lo) = p.validation_min.filter(|lo| n < *lo) {
                return Some(format!("is below the minimum {lo}"));
            }
            if let Some(hi) = p.validation_max.filter(|hi| n > *hi) {
                return Some(format!("is above the maximum {hi}"));
            }
            if let Some(prev) = previous.and_then(|v| v.trim().parse::<i64>().ok()) {
                match &p.validation_monotonic {
                    Some(MonotonicOrder::Increasing) if n < prev => {
                        return Some(format!(
                            "is less than the previous value {prev}, and the parameter can only grow"
                        ));
                    }
                    Some(MonotonicOrder::Decreasing) if n > prev => {
                        return Some(format!(
                            "is more than the previous value {prev}, and the parameter can only shrink"
                        ));
                    }
                    _ => {}
                }
            }
        }
    }
    // Regex (strings).
    if kind == ParameterType::String {
        if let Some(r) = regex_of(p) {
            match regress::Regex::new(r) {
                Ok(re) if re.find(value).is_none() => {
                    return Some(format!("does not match the regular expression /{r}/"));
                }
                Ok(_) => {}
                Err(e) => {
                    // Coder uses Go's regexp; a pattern this one cannot read is left to Coder.
                    tracing::warn!(parameter = ?p.name, regex = r, error = %e, "cannot check a parameter's regex");
                }
            }
        }
    }
    None
}

/// Resolves the values a start build sends for the target version's `params`.
///
/// `given` (flag or MCP) wins over `from_file`, which wins over `previous` (the previous
/// build's values; ephemeral parameters are not carried over), which wins over the default.
/// Every value is checked; the problems are all returned together.
pub fn resolve_parameters(
    params: &[types::TemplateVersionParameter],
    given: &BTreeMap<String, String>,
    from_file: &BTreeMap<String, String>,
    previous: &[types::WorkspaceBuildParameter],
) -> std::result::Result<Vec<ResolvedParameter>, Vec<ParameterProblem>> {
    let mut problems = Vec::new();
    let names: Vec<&str> = params.iter().filter_map(|p| p.name.as_deref()).collect();
    for (name, value, source) in given
        .iter()
        .map(|(n, v)| (n, v, ParameterSource::Given))
        .chain(from_file.iter().map(|(n, v)| (n, v, ParameterSource::File)))
    {
        if !names.contains(&name.as_str()) {
            problems.push(ParameterProblem {
                name: name.clone(),
                value: Some(value.clone()),
                source: Some(source),
                problem: "the target template version has no such parameter".into(),
                allowed: if names.is_empty() {
                    "no parameters at all (this version has none)".into()
                } else {
                    format!("the parameters of this version: {}", names.join(", "))
                },
            });
        }
    }
    let mut resolved = Vec::new();
    for p in params {
        let Some(name) = p.name.clone().filter(|n| !n.is_empty()) else {
            continue;
        };
        let previous_value = previous
            .iter()
            .find(|b| b.name.as_deref() == Some(name.as_str()))
            .and_then(|b| b.value.clone());
        let carried = previous_value.clone().filter(|_| p.ephemeral != Some(true));
        let chosen = given
            .get(&name)
            .map(|v| (v.clone(), ParameterSource::Given))
            .or_else(|| {
                from_file
                    .get(&name)
                    .map(|v| (v.clone(), ParameterSource::File))
            })
            .or_else(|| carried.clone().map(|v| (v, ParameterSource::PreviousBuild)));
        let required = p.required == Some(true);
        let (value, source) = match chosen {
            Some((v, s)) if !v.is_empty() => (v, s),
            // An empty value means the default, as Coder reads it.
            Some(_) | None if required => {
                problems.push(ParameterProblem {
                    name: name.clone(),
                    value: None,
                    source: None,
                    problem: "is required and has no value (none given, none in the previous build, no default)".into(),
                    allowed: allowed_values(p, carried.as_deref()),
                });
                continue;
            }
            Some((v, s)) if p.default_value.as_deref().unwrap_or("").is_empty() => (v, s),
            _ => (
                p.default_value.clone().unwrap_or_default(),
                ParameterSource::Default,
            ),
        };
        // An empty optional value is left to Coder (it means "no value").
        if !value.is_empty() {
            if let Some(problem) = check_value(p, &value, carried.as_deref()) {
                let problem = match p
                    .validation_error
                    .as_deref()
                    .filter(|m| !m.trim().is_empty())
                {
                    Some(msg) => format!(
                        "{problem} (the template says: {})",
                        substitute(msg, p, Some(&value))
                    ),
                    None => problem,
                };
                problems.push(ParameterProblem {
                    name: name.clone(),
                    value: Some(value),
                    source: Some(source),
                    problem,
                    allowed: allowed_values(p, carried.as_deref()),
                });
                continue;
            }
        } else if p.mutable == Some(false)
            && carried.as_deref().is_some_and(|prev| !prev.is_empty())
        {
            problems.push(ParameterProblem {
                name: name.clone(),
                value: Some(value),
                source: Some(source),
                problem: format!(
                    "would change the immutable parameter from {:?}",
                    carried.clone().unwrap_or_default()
                ),
                allowed: allowed_values(p, carried.as_deref()),
            });
            continue;
        }
        resolved.push(ResolvedParameter {
            name,
            value,
            source,
            previous_value,
        });
    }
    if problems.is_empty() {
        Ok(resolved)
    } else {
        Err(problems)
    }
}

/// One paragraph for a refusal: what was refused, each problem, what to do.
pub(crate) fn refusal(
    action: &str,
    workspace: &str,
    version: &str,
    problems: &[ParameterProblem],
) -> Error {
    let list = problems
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("; ");
    Error::advised(
        Error::Refused(format!(
            "fleet refused to {action} {workspace} on template version {version}: Coder would refuse \
             the start build's parameters, so nothing was stopped or started (no build was created). \
             {list}"
        )),
        vec![Remedy::Give {
            input: Input::Parameters,
            value: None,
        }],
    )
}

#[cfg(test)]
mod tests {
    use super::nested_deeper_than as deeper;

    #[test]
    fn nesting_is_measured_in_one_pass_never_below_the_real_depth() {
        let flat = "cpu: 8\nregion: \"eu-[west]\"\nlist: [1, [2, 3]]\n# [[[[ comment\n";
        assert_eq!(deeper(flat, 3), None);
        assert_eq!(deeper(flat, 2), Some(3), "list is 3 deep");
        let deep = format!("a: {}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(deeper(&deep, 64), Some(1));
        let dashes = format!("a:\n  {}x\n", "- ".repeat(100));
        assert_eq!(deeper(&dashes, 64), Some(2));
        let mut block = String::new();
        for i in 0..100 {
            block.push_str(&format!("{}k{i}:\n", " ".repeat(i)));
        }
        assert_eq!(deeper(&block, 64), Some(65));
        // Closing brackets inside a quoted scalar close nothing.
        let hiding = format!("a: [\"]]]]\", {}{}", "[".repeat(70), "]".repeat(71));
        assert_eq!(deeper(&hiding, 64), Some(1));
        let json = format!("{{\"a\": {}1{}}}", "[".repeat(70), "]".repeat(70));
        assert_eq!(deeper(&json, 64), Some(1));
    }
}
