//! The built `fleet-mcp` under a storm of random and malformed input over stdio (raw JSON-RPC
//! lines, so that truly malformed messages can be sent): it never crashes, every bad tool call
//! on a known tool is a tool error (isError: true) naming what is wrong, nothing reaches the
//! control planes, no token is ever printed or returned, and it answers normally afterwards.
//!
//! Decided: an unknown tool name stays a JSON-RPC protocol error (-32602, as the MCP
//! specification lists it); arguments that are not an object cannot be parsed as a tools/call
//! request at all, so rmcp answers "Invalid request"; a line that is not JSON is ignored.

use crate::support::reliability as support;

use std::{
    collections::HashMap,
    process::Stdio,
    time::{Duration, Instant},
};

use httpmock::MockServer;
use serde_json::{Value, json};
use support::*;

use crate::support::mcp::{FleetMcp, fleet_mcp};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    process::{Child, ChildStdin},
    sync::mpsc,
};

/// A small deterministic generator (xorshift64*): the storm is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

/// Every tool that can be called with bad arguments (list_operations takes none, so it is
/// listed but has no bad call).
const TOOLS: [&str; 11] = [
    "migrate_workspace_provider",
    "get_workspace_migration_status",
    "wait_for_workspace_migration",
    "update_agent",
    "restart_agent",
    "list_agents",
    "show_agent",
    "get_template_version",
    "update_agents",
    "get_operation",
    "cancel_operation",
];

/// A value of the wrong JSON type for a field of type `ty` ("string", "bool", "u64").
fn wrong_type(rng: &mut Rng, ty: &str) -> Value {
    let deep = {
        let mut v = json!("leaf");
        for i in 0..(1 + rng.below(40)) {
            v = if i % 2 == 0 {
                json!([v])
            } else {
                json!({"k": v})
            };
        }
        v
    };
    let choices: Vec<Value> = match ty {
        "string" => vec![
            json!(5),
            json!(-1.5),
            json!(true),
            json!(null),
            json!(["a"]),
            json!({"a": 1}),
            deep,
        ],
        "bool" => vec![
            json!("true"),
            json!(1),
            json!(0),
            json!([true]),
            json!({"v": true}),
            json!("yes"),
            deep,
        ],
        _ => vec![
            json!("10"),
            json!(-1),
            json!(1.5),
            json!(1e30),
            json!(true),
            json!([1]),
            json!(18446744073709551616u128.to_string()),
            deep,
        ],
    };
    loop {
        // null is a valid value of an optional field: never pick it.
        let v = rng.pick(&choices).clone();
        if !v.is_null() {
            return v;
        }
    }
}

/// A string that is invalid wherever a workspace id or name is expected.
fn bad_name(rng: &mut Rng) -> String {
    let huge_bad = format!("{}/{}", "a".repeat(50_000), "b/c d");
    rng.pick(&[
        String::new(),
        "   ".into(),
        "a/b/c".into(),
        "no spaces allowed!".into(),
        "bell\u{7}".into(),
        "nul\u{0}byte".into(),
        "../../etc/passwd".into(),
        "名前/ü ber".into(),
        huge_bad,
    ])
    .clone()
}

fn bad_uuid(rng: &mut Rng) -> String {
    // (Not "": update_agent reads an empty template_version_id as "the active version". Not
    // "v2-latest" any more: a version name is valid since issue 27 item 5.)
    rng.pick(&[
        "v2 latest!",
        "0b7a8f54-3c1d-4e8b-9a51",
        "0b7a8f54-3c1d-4e8b-9a51-2f6d1c7e9a3g",
        "{}",
        "00000000-0000-0000-0000-0000000000000",
    ])
    .to_string()
}

/// Arguments that are certainly invalid for `tool` (each one is rejected before any request).
fn bad_args(rng: &mut Rng, tool: &str) -> serde_json::Map<String, Value> {
    let mut a = serde_json::Map::new();
    match tool {
        "migrate_workspace_provider" => {
            a.insert("workspace_id".into(), json!("ws-1"));
            a.insert("to".into(), json!("hetzner"));
            a.insert("from".into(), json!("aws"));
            a.insert("confirm".into(), json!(true));
            match rng.below(9) {
                0 => {
                    a.remove("workspace_id");
                }
                1 => {
                    a.remove("to");
                }
                2 => {
                    a.insert(
                        "to".into(),
                        json!(rng.pick(&["azure", "AWS", "", "aws ", "digitalocean"])),
                    );
                }
                3 => {
                    a.insert("from".into(), wrong_type(rng, "string"));
                }
                4 => {
                    a.insert("confirm".into(), wrong_type(rng, "bool"));
                }
                5 => {
                    a.insert("confirm".into(), json!(rng.pick(&[false, false])));
                }
                6 => {
                    a.insert("from".into(), json!("hetzner"));
                    a.insert("to".into(), json!("hetzner"));
                    a.insert("from_instance_id".into(), json!("1"));
                }
                7 => {
                    // Issue 27: without an instance id the tenant API is asked for one (a
                    // read); a blank one is invalid before any request.
                    a.insert("from".into(), json!("gcp"));
                    a.insert("to".into(), json!("aws"));
                    a.insert("from_instance_id".into(), json!(rng.pick(&["", " ", "\t"])));
                }
                _ => {
                    a.insert(
                        "workspace_id".into(),
                        json!(bad_name(rng).replace(' ', "/")),
                    );
                }
            }
        }
        "get_workspace_migration_status" | "wait_for_workspace_migration" => {
            a.insert("workspace_id".into(), json!("ws-1"));
            match rng.below(4) {
                0 => {
                    a.remove("workspace_id");
                }
                1 => {
                    a.insert("workspace_id".into(), wrong_type(rng, "string"));
                }
                2 if tool.starts_with("wait") => {
                    a.insert("timeout_seconds".into(), wrong_type(rng, "u64"));
                }
                _ => {
                    let id = rng
                        .pick(&["", "  ", "a/b", "x\u{1}y", "../admin"])
                        .to_string();
                    a.insert("workspace_id".into(), json!(id));
                }
            }
        }
        "update_agent" | "restart_agent" | "show_agent" => {
            a.insert("agent_name".into(), json!("alice/dev"));
            match rng.below(if tool == "update_agent" { 5 } else { 3 }) {
                0 => {
                    a.remove("agent_name");
                }
                1 => {
                    a.insert("agent_name".into(), wrong_type(rng, "string"));
                }
                2 => {
                    a.insert("agent_name".into(), json!(bad_name(rng)));
                }
                3 => {
                    a.insert("template_version_id".into(), json!(bad_uuid(rng)));
                }
                _ => {
                    a.insert("force".into(), wrong_type(rng, "bool"));
                }
            }
        }
        "list_agents" => {
            a.insert("outdated".into(), wrong_type(rng, "bool"));
        }
        "get_operation" | "cancel_operation" => match rng.below(3) {
            0 => {}
            1 => {
                a.insert("operation_id".into(), wrong_type(rng, "string"));
            }
            _ => {
                a.insert(
                    "operation_id".into(),
                    json!(rng.pick(&["", "op-nope", "../x"])),
                );
            }
        },
        "update_agents" => {
            a.insert("agent_names".into(), json!(["alice/dev", "bob/dev"]));
            a.insert("parallel".into(), json!(2));
            match rng.below(7) {
                0 => {
                    a.remove("agent_names");
                }
                1 => {
                    let not_a_list = [json!("alice/dev"), json!(5), json!({"a": 1})];
                    a.insert("agent_names".into(), rng.pick(&not_a_list).clone());
                }
                2 => {
                    a.insert("agent_names".into(), json!(["alice/dev", 7, null]));
                }
                3 => {
                    a.insert("parallel".into(), json!(rng.pick(&[0, 65, 100_000])));
                }
                4 => {
                    a.insert("all_outdated".into(), json!(true));
                }
                5 => {
                    a.insert("template_version_id".into(), json!(bad_uuid(rng)));
                }
                _ => {
                    a.insert("agent_names".into(), json!(["", "a/b/c"]));
                }
            }
        }
        _ => match rng.below(4) {
            0 => {}
            1 => {
                a.insert("template_version_id".into(), json!(""));
            }
            2 => {
                a.insert("template_version_id".into(), wrong_type(rng, "string"));
            }
            _ => {
                a.insert("template_version_id".into(), json!(bad_uuid(rng)));
            }
        },
    }
    // Junk next to it, sometimes.
    if rng.below(3) == 0 {
        a.insert(
            "unexpected".into(),
            json!({"nested": [1, {"deeper": [null, "x"]}]}),
        );
    }
    a
}

/// What answer a line should get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// result.isError == true.
    ToolError,
    /// A JSON-RPC error with this id.
    ProtocolError,
    /// Nothing with this id can come back (the line cannot carry one).
    Nothing,
}

struct Mcp {
    child: Child,
    stdin: ChildStdin,
    answers: mpsc::UnboundedReceiver<Value>,
    /// Answers read while looking for another one, by numeric id.
    seen: HashMap<u64, Value>,
    stderr: tokio::task::JoinHandle<String>,
}

async fn start(base: &str) -> Mcp {
    start_with(base, base).await
}

async fn start_with(base: &str, coder: &str) -> Mcp {
    let mut child = marked(base, coder)
        .env("FLEET_LOG_LEVEL", "trace")
        .command()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("fleet-mcp starts");
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr_pipe = child.stderr.take().unwrap();
    let (tx, answers) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            for m in MARKERS {
                assert!(
                    !line.contains(m),
                    "fleet-mcp wrote a token on stdout: {line}"
                );
            }
            let v: Value = serde_json::from_str(&line).expect("fleet-mcp writes JSON lines");
            if tx.send(v).is_err() {
                return;
            }
        }
    });
    let stderr = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr_pipe.read_to_string(&mut s).await;
        s
    });
    let mut mcp = Mcp {
        child,
        stdin,
        answers,
        seen: HashMap::new(),
        stderr,
    };
    mcp.send(&json!({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "storm", "version": "0"}}}).to_string())
        .await;
    let init = mcp.answer_to(&json!("init")).await;
    assert!(init.get("result").is_some(), "{init}");
    mcp.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
        .await;
    mcp
}

impl Mcp {
    async fn send(&mut self, line: &str) {
        self.stdin
            .write_all(line.as_bytes())
            .await
            .expect("fleet-mcp reads");
        self.stdin.write_all(b"\n").await.expect("fleet-mcp reads");
    }

    async fn answer_to(&mut self, id: &Value) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = tokio::time::timeout(left, self.answers.recv())
                .await
                .expect("an answer in time")
                .expect("fleet-mcp still running");
            if v.get("id") == Some(id) {
                return v;
            }
            if let Some(n) = v.get("id").and_then(Value::as_u64) {
                self.seen.insert(n, v);
            }
        }
    }
}

fn call(id: u64, name: &str, args: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": args}}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_bad_calls_never_crash_it_and_each_is_a_tool_error() {
    let began = Instant::now();
    let server = MockServer::start_async().await;
    let list = server
        .mock_async(|when, then| {
            when.path("/api/v2/workspaces");
            then.status(200)
                .json_body(json!({"workspaces": [], "count": 0}));
        })
        .await;
    let catch_all = server
        .mock_async(|_when, then| {
            then.status(500)
                .json_body(json!({"message": "no request was expected"}));
        })
        .await;
    let mut mcp = start(&server.base_url()).await;
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut expect: HashMap<u64, (Expect, String)> = HashMap::new();
    const N: u64 = 3000;
    let mut kinds: HashMap<&str, usize> = HashMap::new();
    for id in 1..=N {
        let (line, e, kind) = match rng.below(20) {
            0..=13 => {
                let tool = *rng.pick(&TOOLS);
                (
                    call(id, tool, Value::Object(bad_args(&mut rng, tool))),
                    Expect::ToolError,
                    "bad arguments",
                )
            }
            14 => {
                let name = rng
                    .pick(&[
                        "",
                        "nope",
                        "list_agents ",
                        "LIST_AGENTS",
                        "tools/list",
                        "\u{0}",
                    ])
                    .to_string();
                (
                    call(id, &name, json!({})),
                    Expect::ProtocolError,
                    "unknown tool",
                )
            }
            15 => {
                let args = rng
                    .pick(&[json!(5), json!("x"), json!([1, 2]), json!(true)])
                    .clone();
                let tool = *rng.pick(&TOOLS);
                (
                    call(id, tool, args),
                    Expect::ProtocolError,
                    "non-object arguments",
                )
            }
            16 => {
                // A known tool with no arguments at all.
                let tool = *rng.pick(&TOOLS[..5]);
                let line = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool}}).to_string();
                (line, Expect::ToolError, "missing arguments")
            }
            17 => {
                let junk = rng.pick(&[
                    "not json at all",
                    "{",
                    "{\"jsonrpc\":\"2.0\",\"id\":",
                    "[1,2,3",
                    "\u{feff}{}}",
                    "null",
                ]);
                (junk.to_string(), Expect::Nothing, "invalid JSON line")
            }
            18 => {
                let line = rng.pick(&[
                    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"arguments": {}}}),
                    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": 42}}),
                    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": []}),
                    json!({"jsonrpc": "1.0", "id": id, "method": "tools/call"}),
                ])
                .to_string();
                (line, Expect::Nothing, "malformed request")
            }
            _ => {
                let line = json!({"jsonrpc": "2.0", "id": id, "method": rng.pick(&["tools/frobnicate", "resources/read", "prompts/get"]), "params": {}}).to_string();
                (line, Expect::ProtocolError, "unknown method")
            }
        };
        *kinds.entry(kind).or_default() += 1;
        expect.insert(id, (e, line.chars().take(300).collect()));
        mcp.send(&line).await;
    }
    // It still answers, and a valid call works.
    mcp.send(&json!({"jsonrpc": "2.0", "id": "after", "method": "tools/list"}).to_string())
        .await;
    let mut seen: HashMap<u64, Value> = HashMap::new();
    let tools = loop {
        let v = tokio::time::timeout(Duration::from_secs(30), mcp.answers.recv())
            .await
            .expect("answers keep coming")
            .expect("fleet-mcp did not crash");
        match v.get("id") {
            Some(Value::String(s)) if s == "after" => break v,
            Some(Value::Number(n)) => {
                seen.insert(n.as_u64().unwrap(), v);
            }
            _ => {}
        }
    };
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .expect("tools/list answered")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    // Beside TOOLS: list_operations, migrate_workspaces, get_template and
    // promote_template_version (their bad input is covered in tests/rollout_mcp.rs).
    assert_eq!(names.len(), TOOLS.len() + 4, "{names:?}");
    mcp.send(&call(N + 1, "list_agents", json!({}))).await;
    let ok = mcp.answer_to(&json!(N + 1)).await;
    assert_eq!(ok["result"]["isError"], json!(false), "{ok}");
    seen.extend(mcp.seen.drain());
    // Answers to the storm may still be arriving (tools run concurrently): collect them.
    let deadline = Instant::now() + Duration::from_secs(20);
    // Every answer a bad call is owed, by id (counting answers would stop early: an answer to a
    // call owed nothing would stand in for a late one).
    let owed = |seen: &HashMap<u64, Value>| {
        expect
            .iter()
            .any(|(id, (e, _))| *e != Expect::Nothing && !seen.contains_key(id))
    };
    while owed(&seen) && Instant::now() < deadline {
        if let Ok(Some(v)) =
            tokio::time::timeout(Duration::from_millis(200), mcp.answers.recv()).await
        {
            if let Some(n) = v.get("id").and_then(Value::as_u64) {
                seen.insert(n, v);
            }
        }
    }

    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (id, (e, line)) in &expect {
        let answer = seen.get(id);
        match e {
            Expect::ToolError => {
                let a = answer.unwrap_or_else(|| panic!("no answer to {line}"));
                assert_eq!(
                    a["result"]["isError"],
                    json!(true),
                    "a tool error for {line}: {a}"
                );
                let text = a["result"]["content"][0]["text"]
                    .as_str()
                    .unwrap_or_default();
                assert!(
                    !text.trim().is_empty(),
                    "the tool error says something: {a}"
                );
                assert!(
                    !text.contains("no request was expected"),
                    "rejected only after a request was sent: {line}\n{text}"
                );
                // Arguments that do not fit the schema name the argument, in one place
                // (FleetServer::call_tool), never rmcp's bare serde message.
                assert!(!text.starts_with("failed to deserialize"), "{text}");
                if text.contains("invalid arguments for") {
                    assert!(
                        text.contains("the argument `"),
                        "a bad argument is named: {text}\n for {line}"
                    );
                    *counts.entry("naming the bad argument").or_default() += 1;
                }
                *counts.entry("tool errors").or_default() += 1;
            }
            Expect::ProtocolError => {
                let a = answer.unwrap_or_else(|| panic!("no answer to {line}"));
                assert!(a.get("error").is_some(), "a protocol error for {line}: {a}");
                *counts.entry("protocol errors").or_default() += 1;
            }
            Expect::Nothing => {
                if let Some(a) = answer {
                    assert!(
                        a.get("error").is_some() || a["result"]["isError"] == json!(true),
                        "{line}: {a}"
                    );
                }
                *counts.entry("ignored or invalid request").or_default() += 1;
            }
        }
    }
    // Nothing of the storm reached a control plane; the one valid call did.
    let stray = catch_all.calls_async().await;
    assert_eq!(stray, 0, "a bad call sent a request");
    assert_eq!(list.calls_async().await, 1);
    drop(mcp.stdin);
    let status = tokio::time::timeout(Duration::from_secs(10), mcp.child.wait())
        .await
        .expect("fleet-mcp exits when stdin closes")
        .unwrap();
    let stderr = mcp.stderr.await.unwrap();
    for m in MARKERS {
        assert!(!stderr.contains(m), "fleet-mcp logged a token on stderr");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(status.success(), "clean exit: {status:?}");
    eprintln!(
        "MCP storm: {N} lines in {:?}; kinds {kinds:?}; answers {counts:?}; requests sent 0 (+1 valid)",
        began.elapsed()
    );
    assert!(began.elapsed() < Duration::from_secs(60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_mcp_never_returns_or_logs_a_token() {
    // Every tool against a server that echoes the tokens in 401 bodies, and against nothing.
    // Each control plane echoes the tokens it was sent.
    let molecule = MockServer::start_async().await;
    let text = format!("denied: {CP_MARKER} {ORG_MARKER}");
    molecule
        .mock_async(move |_when, then| {
            then.status(401)
                .json_body(json!({"message": text, "error": text}));
        })
        .await;
    let coder = MockServer::start_async().await;
    let text = format!("denied: {CODER_MARKER}");
    coder
        .mock_async(move |_when, then| {
            then.status(401)
                .json_body(json!({"message": text, "error": text}));
        })
        .await;
    let dead = format!("http://127.0.0.1:{}", closed_port());
    for (molecule_base, coder_base) in [
        (molecule.base_url(), coder.base_url()),
        (dead.clone(), dead),
    ] {
        let mut mcp = start_with(&molecule_base, &coder_base).await;
        let valid: Vec<(&str, Value)> = vec![
            (
                "migrate_workspace_provider",
                json!({"workspace_id": "ws-1", "to": "hetzner", "confirm": true}),
            ),
            (
                "migrate_workspace_provider",
                json!({"workspace_id": "ws-1", "to": "hetzner", "from": "aws", "confirm": true}),
            ),
            (
                "get_workspace_migration_status",
                json!({"workspace_id": "ws-1"}),
            ),
            (
                "wait_for_workspace_migration",
                json!({"workspace_id": "ws-1", "timeout_seconds": 1}),
            ),
            ("update_agent", json!({"agent_name": "alice/dev"})),
            ("restart_agent", json!({"agent_name": "alice/dev"})),
            ("list_agents", json!({})),
            ("show_agent", json!({"agent_name": "dev"})),
            (
                "get_template_version",
                json!({"template_version_id": "0b7a8f54-3c1d-4e8b-9a51-2f6d1c7e9a30"}),
            ),
        ];
        for (i, (tool, args)) in valid.into_iter().enumerate() {
            mcp.send(&call(i as u64, tool, args)).await;
            let a = mcp.answer_to(&json!(i as u64)).await;
            let s = a.to_string();
            for m in MARKERS {
                assert!(!s.contains(m), "{tool} returned a token: {s}");
            }
            if tool != "wait_for_workspace_migration" {
                // (A wait on a dead server may end as a timed-out outcome instead.)
                assert_eq!(a["result"]["isError"], json!(true), "{tool}: {s}");
            }
        }
        drop(mcp.stdin);
        let _ = tokio::time::timeout(Duration::from_secs(10), mcp.child.wait()).await;
        let stderr = mcp.stderr.await.unwrap();
        for m in MARKERS {
            assert!(
                !stderr.contains(m),
                "fleet-mcp logged a token on stderr: {stderr}"
            );
        }
    }
}

/// Valid arguments for each tool: without a closed argument list, each call would go on to
/// read or change something.
fn valid_args(tool: &str) -> Value {
    match tool {
        "update_agent" | "restart_agent" | "show_agent" => json!({"agent_name": "alice/dev"}),
        "update_agents" => json!({"agent_names": ["alice/dev"]}),
        "list_agents" | "list_operations" => json!({}),
        "get_template_version" => {
            json!({"template_version_id": "7b2a1c44-0d5e-4c1a-9f3e-2b8d6a1e9c01"})
        }
        "migrate_workspace_provider" => {
            json!({"workspace_id": "ws-1", "to": "hetzner", "from": "aws", "confirm": true})
        }
        "migrate_workspaces" => {
            json!({"workspace_ids": ["ws-1"], "to": "hetzner", "from": "aws", "confirm": true})
        }
        "get_workspace_migration_status" | "wait_for_workspace_migration" => {
            json!({"workspace_id": "ws-1"})
        }
        "get_operation" | "cancel_operation" => json!({"operation_id": "op-1"}),
        "get_template" => json!({"template": "shop"}),
        "promote_template_version" => {
            json!({"template": "shop", "version": "v2", "dry_run": true})
        }
        other => panic!("a new tool {other}: give it valid arguments in valid_args"),
    }
}

/// Every object in a schema that lists properties is closed (`additionalProperties: false`);
/// maps (no `properties`) are the tool's own free-form values (template parameters, env).
fn assert_closed(schema: &Value, at: &str) {
    match schema {
        Value::Object(o) => {
            if o.contains_key("properties") {
                assert_eq!(
                    o.get("additionalProperties"),
                    Some(&json!(false)),
                    "{at} is closed: {schema}"
                );
            }
            for (k, v) in o {
                assert_closed(v, &format!("{at}.{k}"));
            }
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, v)| assert_closed(v, &format!("{at}[{i}]"))),
        _ => {}
    }
}

/// fleet-mcp with both control planes at `base`, driven by rmcp's client (a real MCP client).
async fn rmcp_client(base: &str) -> rmcp::service::RunningService<rmcp::RoleClient, ()> {
    marked(base, base).connect().await
}

/// fleet-mcp with the Molecule planes at `base` and Coder at `coder`, every token a marker.
fn marked(base: &str, coder: &str) -> FleetMcp {
    fleet_mcp(&[])
        .molecule(base, CP_MARKER)
        .env("MOLECULE_API_URL", base)
        .env("MOLECULE_ORG_API_KEY", ORG_MARKER)
        .coder(coder, CODER_MARKER)
}

/// A tool call through rmcp's client: (isError, the text).
async fn rmcp_call(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    name: &str,
    args: &Value,
) -> (bool, String) {
    let params = rmcp::model::CallToolRequestParams::new(name.to_string())
        .with_arguments(args.as_object().unwrap().clone());
    let r = client
        .call_tool(params)
        .await
        .expect("the call is answered");
    let text = r
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n");
    (r.is_error == Some(true), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tool_refuses_an_unknown_argument_by_name_before_sending_anything() {
    let server = MockServer::start_async().await;
    let catch_all = server
        .mock_async(|_when, then| {
            then.status(500)
                .json_body(json!({"message": "no request was expected"}));
        })
        .await;
    let client = rmcp_client(&server.base_url()).await;
    let tools = client.list_all_tools().await.expect("tools/list");
    assert_eq!(
        tools.len(),
        15,
        "every tool is listed with both planes configured"
    );
    for tool in &tools {
        let name = tool.name.as_ref();
        let schema = Value::Object((*tool.input_schema).clone());
        assert_closed(&schema, name);
        let valid: Vec<&str> = schema["properties"]
            .as_object()
            .map(|p| p.keys().map(String::as_str).collect())
            .unwrap_or_default();
        // A guessed name next to valid arguments, then near misses of real ones.
        let mut guesses = vec![(
            "dry_run_please",
            valid.contains(&"dry_run").then_some("dry_run"),
        )];
        if valid.contains(&"agent_name") {
            guesses.push(("agent", Some("agent_name")));
        }
        if valid.contains(&"workspace_id") {
            guesses.push(("workspaceId", Some("workspace_id")));
        }
        if valid.contains(&"wait_seconds") {
            guesses.push(("wait_secs", Some("wait_seconds")));
        }
        for (guess, suggestion) in guesses {
            let mut args = valid_args(name);
            args[guess] = json!(true);
            let (is_error, text) = rmcp_call(&client, name, &args).await;
            assert!(is_error, "{name} {args}: {text}");
            assert!(
                text.contains(&format!("`{guess}`")),
                "names the argument: {text}"
            );
            assert!(text.contains("nothing was read or sent"), "{text}");
            for v in &valid {
                assert!(text.contains(v), "lists the valid argument {v}: {text}");
            }
            if let Some(s) = suggestion {
                assert!(text.contains(&format!("did you mean `{s}`")), "{text}");
            }
        }
    }
    // A wrong type is refused by name, never coerced.
    for (name, args, arg) in [
        (
            "update_agent",
            json!({"agent_name": "alice/dev", "force": "true"}),
            "force",
        ),
        (
            "update_agent",
            json!({"agent_name": "alice/dev", "dry_run": "true"}),
            "dry_run",
        ),
        (
            "update_agent",
            json!({"agent_name": "alice/dev", "wait_seconds": "5"}),
            "wait_seconds",
        ),
        (
            "migrate_workspace_provider",
            json!({"workspace_id": "ws-1", "to": "gcp", "confirm": 1}),
            "confirm",
        ),
        ("list_agents", json!({"outdated": 1}), "outdated"),
    ] {
        let (is_error, text) = rmcp_call(&client, name, &args).await;
        assert!(is_error, "{args}: {text}");
        assert!(text.contains(&format!("`{arg}`")), "{args}: {text}");
    }
    assert_eq!(
        catch_all.calls_async().await,
        0,
        "a refused call sent a request"
    );
    // The same server does send for a valid call (the catch-all would have seen any request).
    let (is_error, _) = rmcp_call(&client, "show_agent", &valid_args("show_agent")).await;
    assert!(is_error);
    assert!(catch_all.calls_async().await >= 1);
    client.cancel().await.ok();
}

/// The python that can count tokens (tiktoken and bpe-openai importable), or None when this
/// machine has none: then the test is skipped with a message, except under CI (CI=true) or
/// with FLEET_TEST_PYTHON set (as .ci/run sets it), where it fails.
fn token_counter() -> Option<(String, std::path::PathBuf)> {
    let python = std::env::var("FLEET_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tools/count_tokens.py");
    let importable = std::process::Command::new(&python)
        .args(["-c", "import tiktoken, bpe_openai"])
        .output()
        .is_ok_and(|o| o.status.success());
    if importable && script.is_file() {
        return Some((python, script));
    }
    let why = format!(
        "cannot count tokens: {} (set FLEET_TEST_PYTHON to a python with `pip install tiktoken \
         bpe-openai`; the counter is {})",
        if importable {
            "the counter script is missing".to_string()
        } else {
            format!("{python} cannot import tiktoken and bpe_openai")
        },
        script.display()
    );
    // Under CI, or when told which python to use, a missing counter is a failure.
    assert!(
        std::env::var("CI").as_deref() != Ok("true")
            && std::env::var_os("FLEET_TEST_PYTHON").is_none(),
        "{why}"
    );
    eprintln!("SKIPPED: {why}");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_definitions_cost_a_model_at_most_2500_tokens() {
    let Some((python, script)) = token_counter() else {
        return;
    };
    let server = MockServer::start_async().await;
    let mut mcp = start(&server.base_url()).await;
    mcp.send(&json!({"jsonrpc": "2.0", "id": "list", "method": "tools/list"}).to_string())
        .await;
    let tools = mcp.answer_to(&json!("list")).await["result"]["tools"].clone();
    let tools = tools.as_array().expect("tools/list answered");
    assert_eq!(tools.len(), 15, "every tool is counted");
    // What a host shows its model: name, description, input schema.
    let visible: Vec<Value> = tools
        .iter()
        .map(|t| json!({"name": t["name"], "description": t["description"], "inputSchema": t["inputSchema"]}))
        .collect();
    let text = Value::Array(visible.clone()).to_string();
    assert!(!text.contains("\"$schema\""), "no $schema: {text}");
    assert!(
        !text.contains("\"default\":null"),
        "no default: null: {text}"
    );
    let mut child = std::process::Command::new(&python)
        .arg("-c")
        .arg(
            "import json, sys; sys.path.insert(0, sys.argv[1]); import count_tokens as c; \
             print(sum(c.count(t) for t in json.load(sys.stdin)))",
        )
        .arg(script.parent().unwrap())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python starts");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "count_tokens.py failed");
    let tokens: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    eprintln!(
        "tools/list: {} tools, {tokens} model-visible tokens (name + description + inputSchema)",
        tools.len()
    );
    assert!(
        tokens <= 2_500,
        "{tokens} model-visible tokens, at most 2,500"
    );
}

#[tokio::test]
async fn the_readme_names_every_tool_that_tools_list_lists() {
    // Issue 27 item 9: the README's MCP section is where a newcomer learns the tools; it named
    // 12 of 13. The "Tools:" paragraph must name exactly what tools/list lists.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = readme
        .split("\n## MCP server")
        .nth(1)
        .expect("an MCP server section");
    let tools_paragraph = section
        .split("\n\n")
        .find(|p| p.trim_start().starts_with("Tools:"))
        .expect("a Tools: paragraph");
    let mut named: Vec<String> = tools_paragraph
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| w.contains('_') && w.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .map(str::to_string)
        .collect();
    named.sort();
    named.dedup();

    let server = MockServer::start_async().await;
    let mut mcp = start(&server.base_url()).await;
    mcp.send(&json!({"jsonrpc": "2.0", "id": "list", "method": "tools/list"}).to_string())
        .await;
    let tools = mcp.answer_to(&json!("list")).await["result"]["tools"].clone();
    let mut listed: Vec<String> = tools
        .as_array()
        .expect("tools/list answered")
        .iter()
        .map(|t| t["name"].as_str().unwrap_or_default().to_string())
        .collect();
    listed.sort();
    assert_eq!(
        named, listed,
        "README's Tools: paragraph against tools/list"
    );
}

/// Over pipes (how hosts start a stdio server) the protocol runs on the runtime's reactor:
/// no blocking thread reads stdin or writes stdout, so a burst of requests leaves the process
/// with its main thread and its two workers, and each answer skips a hand-off between threads.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_over_pipes_runs_on_the_reactor_without_blocking_threads() {
    let server = MockServer::start_async().await;
    let mut mcp = start(&server.base_url()).await;
    let pid = mcp.child.id().expect("fleet-mcp runs");
    for id in 0..200u64 {
        mcp.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"}).to_string())
            .await;
    }
    for id in 0..200u64 {
        let answer = match mcp.seen.remove(&id) {
            Some(a) => a,
            None => mcp.answer_to(&json!(id)).await,
        };
        assert_eq!(answer["result"]["tools"].as_array().map(Vec::len), Some(15));
    }
    let threads: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("/proc lists the threads")
        .filter_map(|t| {
            let t = t.ok()?.path();
            std::fs::read_to_string(t.join("comm")).ok()
        })
        .map(|name| name.trim().to_string())
        .collect();
    assert!(
        threads.len() <= 3,
        "main thread and 2 workers expected, found {threads:?}"
    );
}
