//! Bad input through the built `fleet`, table-driven: every invalid value and flag combination
//! exits 2 with a single `error:` line and sends nothing (a catch-all mock counts requests).
//! Also the transport rules: https by default, http:// only to loopback unless --insecure-http.

use crate::support::reliability as support;

use std::time::{Duration, Instant};

use httpmock::MockServer;
use support::*;

const UUID: &str = "0b7a8f54-3c1d-4e8b-9a51-2f6d1c7e9a30";

/// The environment of every case: both control planes configured against `base`.
fn base_env(base: &str) -> Vec<(String, String)> {
    [
        ("MOLECULE_CP_URL", base),
        ("CP_ADMIN_API_TOKEN", CP_MARKER),
        ("MOLECULE_API_URL", base),
        ("MOLECULE_ORG_API_KEY", ORG_MARKER),
        ("CODER_URL", base),
        ("CODER_SESSION_TOKEN", CODER_MARKER),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// One bad-input case: a name, the arguments, and environment overrides ("" removes a variable).
struct Case {
    name: &'static str,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
}

fn case(name: &'static str, args: &[&str]) -> Case {
    Case {
        name,
        args: args.iter().map(|s| s.to_string()).collect(),
        env: vec![],
    }
}

fn case_env(name: &'static str, args: &[&str], env: &[(&'static str, &str)]) -> Case {
    Case {
        env: env.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        ..case(name, args)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_exits_2_with_one_reason_and_sends_nothing() {
    let server = MockServer::start_async().await;
    let catch_all = server
        .mock_async(|_when, then| {
            then.status(500)
                .body("{\"error\":\"no request was expected\"}");
        })
        .await;
    let tmp = tempfile::tempdir().unwrap();
    let token = token_file("file-token\n");
    let token_path = token.path().to_str().unwrap().to_string();
    let empty = token_file("\n");
    let empty_path = empty.path().to_str().unwrap().to_string();
    let missing = tmp
        .path()
        .join("no-such-token")
        .to_str()
        .unwrap()
        .to_string();

    let m = |rest: &[&str]| {
        let mut v = vec!["molecule", "migrate-provider"];
        v.extend_from_slice(rest);
        v.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let mut cases = vec![
        // Molecule: provider rules.
        case(
            "bad --to provider",
            &[
                "molecule",
                "migrate-provider",
                "ws-1",
                "--to",
                "azure",
                "--from",
                "aws",
                "--confirm",
            ],
        ),
        case(
            "bad --from provider",
            &[
                "molecule",
                "migrate-provider",
                "ws-1",
                "--to",
                "aws",
                "--from",
                "AWS!",
                "--confirm",
            ],
        ),
        case(
            "empty --to",
            &[
                "molecule",
                "migrate-provider",
                "ws-1",
                "--to",
                "",
                "--from",
                "aws",
                "--confirm",
            ],
        ),
        case(
            "missing --to",
            &[
                "molecule",
                "migrate-provider",
                "ws-1",
                "--from",
                "aws",
                "--confirm",
            ],
        ),
        case(
            "same from and to",
            &[
                "molecule",
                "migrate-provider",
                "ws-1",
                "--to",
                "aws",
                "--from",
                "aws",
                "--confirm",
            ],
        ),
        case(
            "same from and to (hetzner)",
            &[
                "molecule",
                "migrate-provider",
                "ws-1",
                "--to",
                "hetzner",
                "--from",
                "hetzner",
                "--from-instance-id",
                "42",
                "--confirm",
            ],
        ),
        case(
            "missing confirm, stdin not a terminal",
            &[
                "molecule",
                "migrate-provider",
                "ws-1",
                "--to",
                "hetzner",
                "--from",
                "aws",
            ],
        ),
        case(
            "missing confirm, --wait",
            &[
                "molecule",
                "migrate-provider",
                "ws-1",
                "--to",
                "gcp",
                "--from",
                "aws",
                "--wait",
            ],
        ),
        case(
            "missing confirm, from looked up",
            &["molecule", "migrate-provider", "ws-1", "--to", "gcp"],
        ),
        // Issue 27: a hetzner or gcp source without an instance id is no longer bad input
        // where the tenant API is configured (it gives compute.instance_id); a blank one or
        // one with a control character still is.
        case(
            "hetzner source with a blank instance id",
            &[
                "molecule",
                "migrate-provider",
                "ws-1",
                "--to",
                "aws",
                "--from",
                "hetzner",
                "--from-instance-id",
                "\t",
                "--confirm",
            ],
        ),
        case(
            "gcp source with a control character in the instance id",
            &[
                "molecule",
                "migrate-provider",
                "ws-1",
                "--to",
                "hetzner",
                "--from",
                "gcp",
                "--from-instance-id",
                "gce-1\u{7}",
                "--confirm",
            ],
        ),
        case(
            "blank instance id",
            &[
                "molecule",
                "migrate-provider",
                "ws-1",
                "--to",
                "aws",
                "--from",
                "gcp",
                "--from-instance-id",
                "  ",
                "--confirm",
            ],
        ),
        case(
            "empty workspace id (migrate)",
            &[
                "molecule",
                "migrate-provider",
                "",
                "--to",
                "hetzner",
                "--from",
                "aws",
                "--confirm",
            ],
        ),
        case(
            "blank workspace id (migrate)",
            &[
                "molecule",
                "migrate-provider",
                "   ",
                "--to",
                "hetzner",
                "--from",
                "aws",
                "--confirm",
            ],
        ),
        case(
            "workspace id with a slash",
            &[
                "molecule",
                "migrate-provider",
                "ws/../admin",
                "--to",
                "hetzner",
                "--from",
                "aws",
                "--confirm",
            ],
        ),
        case(
            "workspace id with a control char",
            &[
                "molecule",
                "migrate-provider",
                "ws-1\u{7}",
                "--to",
                "hetzner",
                "--from",
                "aws",
                "--confirm",
            ],
        ),
        case(
            "empty workspace id (status)",
            &["molecule", "migration-status", ""],
        ),
        case(
            "slash in workspace id (status --wait)",
            &["molecule", "migration-status", "a/b", "--wait"],
        ),
        case("missing workspace id", &["molecule", "migration-status"]),
        // Durations.
        case(
            "bad duration (migrate)",
            &[
                "molecule",
                "migrate-provider",
                "ws-1",
                "--to",
                "hetzner",
                "--from",
                "aws",
                "--confirm",
                "--wait",
                "--timeout",
                "10x",
            ],
        ),
        case(
            "zero duration",
            &[
                "molecule",
                "migration-status",
                "ws-1",
                "--wait",
                "--timeout",
                "0s",
            ],
        ),
        case(
            "negative duration",
            &[
                "molecule",
                "migration-status",
                "ws-1",
                "--wait",
                "--timeout",
                "-5m",
            ],
        ),
        case(
            "--timeout without --wait",
            &["molecule", "migration-status", "ws-1", "--timeout", "5m"],
        ),
        case(
            "bad --stop-timeout",
            &["coder", "update", "alice/dev", "--stop-timeout", "soon"],
        ),
        case(
            "zero --start-timeout",
            &["coder", "restart", "alice/dev", "--start-timeout", "0"],
        ),
        case(
            "bad hidden --poll-max",
            &["coder", "update", "dev", "--poll-max", "fast"],
        ),
        // Coder references.
        // (Not "v2-latest": a version name is valid since issue 27 item 5.)
        case(
            "neither a template version name nor a UUID",
            &[
                "coder",
                "update",
                "alice/dev",
                "--template-version",
                "v2 latest!",
            ],
        ),
        case(
            "truncated UUID",
            &["coder", "template-version", "0b7a8f54-3c1d-4e8b-9a51"],
        ),
        case(
            "UUID with junk",
            &[
                "coder",
                "template-version",
                "0b7a8f54-3c1d-4e8b-9a51-2f6d1c7e9a3g",
            ],
        ),
        case("empty template version", &["coder", "template-version", ""]),
        case("empty workspace name (show)", &["coder", "show", ""]),
        case("blank workspace name (update)", &["coder", "update", "  "]),
        case("empty name after owner", &["coder", "restart", "alice/"]),
        case("empty owner", &["coder", "show", "/dev"]),
        case("two slashes", &["coder", "show", "a/b/c"]),
        case("bad characters in name", &["coder", "update", "my dev!"]),
        case("missing workspace", &["coder", "update"]),
        case("bad bool", &["coder", "list", "--outdated=maybe"]),
        // Output format, log level, flags.
        case("unknown output format", &["-o", "yaml", "coder", "list"]),
        case(
            "unknown output format (long)",
            &["coder", "show", "dev", "--output", "xml"],
        ),
        case(
            "unknown log level",
            &["--log-level", "loud", "coder", "list"],
        ),
        case("unknown flag", &["coder", "list", "--frobnicate"]),
        case("unknown subcommand", &["frobnicate"]),
        case("unknown coder subcommand", &["coder", "frobnicate"]),
        case("unknown molecule subcommand", &["molecule", "migrate"]),
        case("no subcommand", &[]),
        case("bad completion shell", &["completions", "tcsh"]),
        case(
            "bad --sim-speed",
            &["--sim", "--sim-speed", "-1", "coder", "list"],
        ),
        case(
            "zero --sim-speed",
            &["--sim", "--sim-speed", "0", "coder", "list"],
        ),
        // Tokens.
        case(
            "token and token file together (CP)",
            &[
                "--cp-admin-token",
                "x",
                "--cp-admin-token-file",
                &token_path,
                "molecule",
                "migration-status",
                "ws-1",
            ],
        ),
        case(
            "token and token file together (Coder)",
            &[
                "--coder-session-token",
                "x",
                "--coder-session-token-file",
                &token_path,
                "coder",
                "list",
            ],
        ),
        case(
            "key and key file together (tenant)",
            &[
                "--molecule-org-api-key",
                "x",
                "--molecule-org-api-key-file",
                &token_path,
                "molecule",
                "migration-status",
                "ws-1",
            ],
        ),
        case(
            "missing token file",
            &["--coder-session-token-file", &missing, "coder", "list"],
        ),
        case(
            "empty token file",
            &[
                "--cp-admin-token-file",
                &empty_path,
                "molecule",
                "migration-status",
                "ws-1",
            ],
        ),
        case_env(
            "token with a control character",
            &["coder", "list"],
            &[("CODER_SESSION_TOKEN", "abc\u{1}def")],
        ),
        // Configuration: URLs and missing settings.
        case_env(
            "CP URL not a URL",
            &["molecule", "migration-status", "ws-1"],
            &[("MOLECULE_CP_URL", "not a url")],
        ),
        case_env(
            "CP URL with ftp scheme",
            &["molecule", "migration-status", "ws-1"],
            &[("MOLECULE_CP_URL", "ftp://127.0.0.1/")],
        ),
        case_env(
            "CP URL http to a remote host",
            &["molecule", "migration-status", "ws-1"],
            &[("MOLECULE_CP_URL", "http://10.1.2.3:8080")],
        ),
        case_env(
            "tenant URL http to a remote host",
            &[
                "molecule",
                "migrate-provider",
                "ws-1",
                "--to",
                "gcp",
                "--confirm",
            ],
            &[("MOLECULE_API_URL", "http://tenant.example.com")],
        ),
        case_env(
            "Coder URL not a URL",
            &["coder", "list"],
            &[("CODER_URL", "://nohost")],
        ),
        case_env(
            "Coder URL http to a remote host",
            &["coder", "show", "dev"],
            &[("CODER_URL", "http://coder.example.com")],
        ),
        case_env(
            "Coder URL without host",
            &["coder", "list"],
            &[("CODER_URL", "https://")],
        ),
        case_env(
            "Coder not configured",
            &["coder", "list"],
            &[("CODER_URL", ""), ("CODER_SESSION_TOKEN", "")],
        ),
        case_env(
            "Coder token missing",
            &["coder", "show", "dev"],
            &[("CODER_SESSION_TOKEN", "")],
        ),
        case_env(
            "CP token missing",
            &["molecule", "migration-status", "ws-1"],
            &[("CP_ADMIN_API_TOKEN", "")],
        ),
        case_env(
            "bad FLEET_OUTPUT",
            &["coder", "list"],
            &[("FLEET_OUTPUT", "table")],
        ),
    ];
    // The same bad inputs with JSON output: still exit 2, one error line on stderr.
    cases.push(Case {
        name: "same from and to, -o json",
        args: {
            let mut v = m(&[
                "ws-1",
                "--to",
                "gcp",
                "--from",
                "gcp",
                "--from-instance-id",
                "1",
                "--confirm",
            ]);
            v.push("-o".into());
            v.push("json".into());
            v
        },
        env: vec![],
    });

    let base = server.base_url();
    let mut requests_before = 0;
    for c in &cases {
        let mut env = base_env(&base);
        for (k, v) in &c.env {
            env.retain(|(name, _)| name != k);
            if !v.is_empty() {
                env.push((k.to_string(), v.clone()));
            }
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        let run = run_fleet(&args, &env);
        assert_one_reason(c.name, &run);
        assert_eq!(
            run.leaks(),
            None,
            "case {}: a token leaked: {}",
            c.name,
            run.show()
        );
        let requests = catch_all.calls_async().await;
        assert_eq!(
            requests,
            requests_before,
            "case {}: sent {} request(s): {}",
            c.name,
            requests - requests_before,
            run.show()
        );
        requests_before = requests;
    }
    catch_all.assert_calls_async(0).await;
    eprintln!("bad-input cases tried: {}, requests sent: 0", cases.len());
    assert!(cases.len() >= 60, "the table shrank: {}", cases.len());
}

#[test]
fn the_default_cp_url_is_https() {
    assert_eq!(
        fleet::config::DEFAULT_MOLECULE_CP_URL,
        "https://api.moleculesai.app"
    );
    assert!(
        fleet::MoleculeConfig::default()
            .cp_url
            .starts_with("https://")
    );
    // The CLI says so too.
    let help = run_fleet(&["--help"], &[]);
    assert_eq!(help.code, 0);
    assert!(
        help.stdout.contains("default https://api.moleculesai.app"),
        "{}",
        help.show()
    );
}

#[test]
fn without_a_cp_url_fleet_goes_to_the_https_default() {
    // No MOLECULE_CP_URL: the client is built for the https default. Resolving it may fail
    // here (no network), but fleet never refuses it as insecure nor talks plain http.
    let run = run_fleet(
        &[
            "--log-level",
            "debug",
            "molecule",
            "migration-status",
            "ws-1",
        ],
        &[("CP_ADMIN_API_TOKEN", CP_MARKER)],
    );
    assert!(!run.stderr.contains("http://"), "{}", run.show());
    assert!(!run.stderr.contains("--insecure-http"), "{}", run.show());
    assert_eq!(run.leaks(), None);
}

#[tokio::test]
async fn plain_http_is_refused_off_loopback_unless_insecure_http() {
    // A remote host that does not exist: with --insecure-http fleet tries it (a transport
    // error, exit 1); without, it refuses before sending anything (exit 2).
    for (var, args) in [
        ("CODER_URL", vec!["coder", "list"]),
        (
            "MOLECULE_CP_URL",
            vec!["molecule", "migration-status", "ws-1"],
        ),
    ] {
        let env = [
            (var, "http://fleet-test.invalid:1"),
            ("CODER_SESSION_TOKEN", CODER_MARKER),
            ("CP_ADMIN_API_TOKEN", CP_MARKER),
        ];
        let refused = run_fleet(&args, &env);
        assert_one_reason(var, &refused);
        assert!(
            refused.stderr.contains("--insecure-http"),
            "{}",
            refused.show()
        );

        let mut insecure = vec!["--insecure-http"];
        insecure.extend(&args);
        let tried = run_fleet(&insecure, &env);
        assert_eq!(
            tried.code,
            1,
            "{var} with --insecure-http is tried: {}",
            tried.show()
        );
        assert!(
            !tried.stderr.contains("--insecure-http"),
            "{}",
            tried.show()
        );
        assert_eq!(tried.leaks(), None);
    }
}

#[tokio::test]
async fn loopback_http_is_allowed() {
    let server = MockServer::start_async().await;
    let list = server
        .mock_async(|when, then| {
            when.path("/api/v2/workspaces");
            then.status(200)
                .json_body(serde_json::json!({"workspaces": [], "count": 0}));
        })
        .await;
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("http://{host}:{}", server.port());
        let run = run_fleet(
            &["coder", "list", "-o", "json"],
            &[("CODER_URL", &url), ("CODER_SESSION_TOKEN", CODER_MARKER)],
        );
        assert_eq!(run.code, 0, "{host}: {}", run.show());
    }
    // Two requests per `coder list` (issue 27): the list, and the count of every owner's.
    list.assert_calls_async(4).await;
    // The UUID constant is a valid id (keeps the table honest).
    assert!(uuid::Uuid::parse_str(UUID).is_ok());
}

/// Runs a built binary with `env` only (PATH kept), stdin closed, for at most 30 s.
async fn run_within_30s(bin: &str, args: &[&str], env: &[(&str, &str)]) -> (Run, Duration) {
    let started = Instant::now();
    let out = tokio::process::Command::new(bin)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), out)
        .await
        .unwrap_or_else(|_| panic!("{bin} {args:?} did not end within 30 s"))
        .expect("it runs");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    (run, started.elapsed())
}

fn mkfifo(path: &std::path::Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(made.success(), "mkfifo {}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_inputs_are_read_with_bounds_and_refused_before_anything_is_sent() {
    let server = MockServer::start_async().await;
    let catch_all = server
        .mock_async(|_when, then| {
            then.status(500)
                .body("{\"error\":\"no request was expected\"}");
        })
        .await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap().to_string();
    let path = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    // A FIFO nobody writes to, and one an endless writer fills with zeros.
    let silent = path("silent-fifo");
    mkfifo(std::path::Path::new(&silent));
    let zeros = path("zeros-fifo");
    mkfifo(std::path::Path::new(&zeros));
    // One endless writer per run (a reader that goes away ends it).
    let zeros_writer = || {
        tokio::process::Command::new("/bin/sh")
            .args(["-c", "exec cat /dev/zero > \"$0\"", &zeros])
            .kill_on_drop(true)
            .spawn()
            .expect("the writer starts")
    };
    let big_token = path("big-token");
    std::fs::write(&big_token, "a".repeat(64 * 1024 + 1)).unwrap();
    let big_params = path("big-params.yaml");
    std::fs::write(&big_params, format!("x: {}", "a".repeat(4 * 1024 * 1024))).unwrap();
    let deep = path("deep.yaml");
    std::fs::write(
        &deep,
        format!("cpu: {}8{}", "[".repeat(100_000), "]".repeat(100_000)),
    )
    .unwrap();

    let no = |var: &'static str| vec![(var, String::new())];
    // (name, arguments, environment overrides ("" removes), what stderr says)
    type FileCase<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, String)>, &'a str);
    let cases: Vec<FileCase> = vec![
        (
            "Coder token from /dev/zero",
            vec![
                "coder",
                "show",
                "dev",
                "--coder-session-token-file",
                "/dev/zero",
            ],
            no("CODER_SESSION_TOKEN"),
            "the token file /dev/zero is a device",
        ),
        (
            "Coder token from a FIFO nobody writes to",
            vec![
                "coder",
                "show",
                "dev",
                "--coder-session-token-file",
                &silent,
            ],
            no("CODER_SESSION_TOKEN"),
            "nothing wrote to it",
        ),
        (
            "Coder token file over 64 KiB",
            vec![
                "coder",
                "show",
                "dev",
                "--coder-session-token-file",
                &big_token,
            ],
            no("CODER_SESSION_TOKEN"),
            "larger than 64 KiB",
        ),
        (
            "Coder token file is a directory",
            vec!["coder", "show", "dev", "--coder-session-token-file", &dir],
            no("CODER_SESSION_TOKEN"),
            "is a directory",
        ),
        (
            "CP admin token from /dev/zero",
            vec![
                "molecule",
                "migration-status",
                "ws-1",
                "--cp-admin-token-file",
                "/dev/zero",
            ],
            no("CP_ADMIN_API_TOKEN"),
            "is a device",
        ),
        (
            "tenant API key from a pipe of zeros",
            vec![
                "molecule",
                "migrate-provider",
                "ws-1",
                "--to",
                "hetzner",
                "--confirm",
                "--molecule-org-api-key-file",
                &zeros,
            ],
            no("MOLECULE_ORG_API_KEY"),
            "larger than 64 KiB",
        ),
        (
            "parameters from /dev/zero",
            vec!["coder", "update", "dev", "--parameters-file", "/dev/zero"],
            vec![],
            "the parameters file /dev/zero is a device",
        ),
        (
            "parameters from a pipe of zeros",
            vec!["coder", "update", "dev", "--parameters-file", &zeros],
            vec![],
            "larger than 4 MiB",
        ),
        (
            "parameters file over 4 MiB",
            vec!["coder", "update", "dev", "--parameters-file", &big_params],
            vec![],
            "larger than 4 MiB",
        ),
        (
            "parameters nested 100,000 deep",
            vec!["coder", "update", "dev", "--parameters-file", &deep],
            vec![],
            "nested more than 64 levels deep",
        ),
    ];
    let base = server.base_url();
    for (name, args, overrides, expected) in &cases {
        let mut env = base_env(&base);
        for (k, v) in overrides {
            env.retain(|(n, _)| n != k);
            if !v.is_empty() {
                env.push((k.to_string(), v.clone()));
            }
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let writer = args.contains(&zeros.as_str()).then(zeros_writer);
        let (run, took) = run_within_30s(env!("CARGO_BIN_EXE_fleet"), args, &env).await;
        drop(writer);
        assert_one_reason(name, &run);
        assert!(run.stderr.contains(expected), "case {name}: {}", run.show());
        assert!(
            run.stderr.contains("nothing was sent"),
            "case {name}: {}",
            run.show()
        );
        assert!(took < Duration::from_secs(15), "case {name} took {took:?}");
        assert_eq!(
            catch_all.calls_async().await,
            0,
            "case {name} sent a request"
        );
    }

    // fleet-mcp's --http-token-file: the same bounds, before it serves.
    for (file, expected) in [
        ("/dev/zero", "is a device"),
        (silent.as_str(), "nothing wrote to it"),
        (zeros.as_str(), "larger than 64 KiB"),
    ] {
        let writer = (file == zeros).then(zeros_writer);
        let (run, took) = run_within_30s(
            env!("CARGO_BIN_EXE_fleet-mcp"),
            &["--http", "127.0.0.1:0", "--http-token-file", file],
            &[],
        )
        .await;
        assert_eq!(run.code, 2, "{file}: {}", run.show());
        assert!(
            run.stderr.contains(expected) && !run.stderr.contains("serving MCP"),
            "{file}: {}",
            run.show()
        );
        assert!(took < Duration::from_secs(15), "{file} took {took:?}");
        drop(writer);
    }
    catch_all.assert_calls_async(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_a_pipe_is_still_read() {
    // `--coder-session-token-file <(pass show coder)`: a pipe with a writer is read as a file.
    let server = MockServer::start_async().await;
    let answered = server
        .mock_async(|when, then| {
            when.header("coder-session-token", "piped-token-5e1f0c");
            then.status(404)
                .json_body(serde_json::json!({"message": "no such workspace"}));
        })
        .await;
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("token-pipe");
    mkfifo(&fifo);
    let fifo = fifo.to_str().unwrap().to_string();
    let mut writer = tokio::process::Command::new("/bin/sh")
        .args(["-c", "printf 'piped-token-5e1f0c\\n' > \"$0\"", &fifo])
        .kill_on_drop(true)
        .spawn()
        .expect("the writer starts");
    let base = server.base_url();
    let (run, _) = run_within_30s(
        env!("CARGO_BIN_EXE_fleet"),
        &["coder", "show", "dev", "--coder-session-token-file", &fifo],
        &[("CODER_URL", base.as_str())],
    )
    .await;
    assert!(run.stderr.contains("no such workspace"), "{}", run.show());
    assert!(!run.stdout.contains("piped-token") && !run.stderr.contains("piped-token"));
    assert!(
        answered.calls_async().await >= 1,
        "the token read from the pipe was sent: {}",
        run.show()
    );
    let _ = writer.wait().await;
}
