//! Credentials and contexts through the built `fleet`, each test in a fresh HOME and
//! XDG_CONFIG_HOME (a temporary directory): what `coder login` stored, the precedence of
//! flags, environment, context and `coder login`, `fleet context …`, the config file's mode
//! and contents, unknown contexts and malformed files refused before any request, the
//! permission warning, `fleet doctor`, and `fleet sim`'s `context add` line.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use fleet::sim::{CODER_SESSION_TOKEN, CP_ADMIN_TOKEN, ORG_API_KEY};
use httpmock::MockServer;
use serde_json::Value;

use crate::support::cli::{Run, fleet};
use crate::support::sim::{changes, sim};

/// A fresh home: HOME, XDG_CONFIG_HOME, nothing else from the parent's environment.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Self {
        Home {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn config_file(&self) -> PathBuf {
        self.path().join("xdg/fleet/config.toml")
    }

    /// Coder's default config directory under this home (XDG_CONFIG_HOME/coderv2).
    fn coder_dir(&self) -> PathBuf {
        self.path().join("xdg/coderv2")
    }

    /// Writes what `coder login` stores.
    fn coder_login(&self, dir: &Path, url: &str, session: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("url"), url).unwrap();
        write_private(&dir.join("session"), session);
    }

    /// A token file (mode 0600) in this home.
    fn token_file(&self, name: &str, content: &str) -> PathBuf {
        let p = self.path().join(name);
        write_private(&p, content);
        p
    }

    /// `fleet args` (a clean environment) in this home, with `env` set; both streams piped.
    fn cmd(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        fleet(args)
            .env("HOME", self.path())
            .env("XDG_CONFIG_HOME", self.path().join("xdg"))
            .envs(env.iter().copied())
            .piped()
            .command()
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        Run::from_output(&self.cmd(args, env).output().expect("fleet runs"))
    }

    fn json(&self, args: &[&str], env: &[(&str, &str)]) -> Value {
        let run = self.run(args, env);
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.show()))
    }
}

fn write_private(path: &Path, content: &str) {
    std::fs::write(path, content).unwrap();
    set_mode(path, 0o600);
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The Coder URL's source in `fleet context show -o json`.
fn coder_url_source(show: &Value) -> String {
    show["coder"]["url"]["source"]["from"]
        .as_str()
        .unwrap_or("none")
        .to_string()
}

/// True when `fleet coder list` reached the simulator and listed alice/dev.
fn lists_alice_dev(run: &Run) -> bool {
    run.code == 0 && run.stdout.contains("alice/dev")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_coder_login_stored_is_enough_with_or_without_newlines() {
    let sim = sim(2000.0).await;
    // Without trailing newlines, in the default directory (XDG_CONFIG_HOME/coderv2).
    let home = Home::new();
    home.coder_login(&home.coder_dir(), &sim.coder_url(), CODER_SESSION_TOKEN);
    let run = home.run(&["--log-level", "info", "coder", "list"], &[]);
    assert!(lists_alice_dev(&run), "{}", run.show());
    let url_file = home.coder_dir().join("url");
    assert!(
        run.stderr.contains("coder login") && run.stderr.contains(&url_file.display().to_string()),
        "info says where the URL came from: {}",
        run.show()
    );
    assert!(!run.stderr.contains(CODER_SESSION_TOKEN), "{}", run.show());

    // With trailing newlines, in CODER_CONFIG_DIR (which wins over the default directory,
    // here holding a wrong session).
    let home = Home::new();
    home.coder_login(&home.coder_dir(), &sim.coder_url(), "wrong-session-token");
    let elsewhere = home.path().join("coder-elsewhere");
    home.coder_login(
        &elsewhere,
        &format!("{}\n", sim.coder_url()),
        &format!("{CODER_SESSION_TOKEN}\n"),
    );
    let dir = elsewhere.display().to_string();
    let run = home.run(&["coder", "list"], &[("CODER_CONFIG_DIR", &dir)]);
    assert!(lists_alice_dev(&run), "{}", run.show());
    let show = home.json(
        &["context", "show", "-o", "json"],
        &[("CODER_CONFIG_DIR", &dir)],
    );
    assert_eq!(
        show["coder"]["session_token"]["source"]["path"],
        elsewhere.join("session").display().to_string(),
        "{show}"
    );
    assert!(!show.to_string().contains(CODER_SESSION_TOKEN), "{show}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coder_login_session_is_never_sent_to_another_url() {
    let sim = sim(2000.0).await;
    let other = MockServer::start_async().await;
    let any = other
        .mock_async(|when, then| {
            when.any_request();
            then.status(401)
                .json_body(serde_json::json!({"message": "no"}));
        })
        .await;
    let home = Home::new();
    home.coder_login(&home.coder_dir(), &sim.coder_url(), CODER_SESSION_TOKEN);
    let run = home.run(&["coder", "list"], &[("CODER_URL", &other.base_url())]);
    assert_eq!(run.code, 2, "not configured: {}", run.show());
    assert!(
        run.stderr.contains("not sent there"),
        "says why: {}",
        run.show()
    );
    assert_eq!(any.calls_async().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precedence_is_flags_then_environment_then_context_then_coder_login() {
    let home = Home::new();
    home.coder_login(
        &home.coder_dir(),
        "http://127.0.0.1:1",
        "login-session-1234",
    );
    let tokens = home.token_file("ctx-token", "context-token-5678\n");
    let added = home.run(
        &[
            "context",
            "add",
            "staging",
            "--coder-url",
            "http://127.0.0.1:2",
            "--coder-session-token-file",
            tokens.to_str().unwrap(),
            "--use",
        ],
        &[],
    );
    assert_eq!(added.code, 0, "{}", added.show());
    let env = [
        ("CODER_URL", "http://127.0.0.1:3"),
        ("CODER_SESSION_TOKEN", "env-token-9012"),
    ];
    let show = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["context", "show", "-o", "json"];
        all.extend_from_slice(args);
        home.json(&all, env)
    };
    let flag = show(&["--coder-url", "http://127.0.0.1:4"], &env);
    assert_eq!(coder_url_source(&flag), "given", "{flag}");
    assert_eq!(flag["coder"]["url"]["value"], "http://127.0.0.1:4");
    let by_env = show(&[], &env);
    assert_eq!(coder_url_source(&by_env), "env", "{by_env}");
    assert_eq!(by_env["coder"]["session_token"]["source"]["from"], "env");
    let by_context = show(&[], &[]);
    assert_eq!(coder_url_source(&by_context), "context", "{by_context}");
    assert_eq!(
        by_context["coder"]["session_token"]["source"]["from"],
        "context_file"
    );
    // No context in use: what coder login stored.
    let removed = home.run(&["context", "remove", "staging"], &[]);
    assert_eq!(removed.code, 0, "{}", removed.show());
    let by_login = show(&[], &[]);
    assert_eq!(coder_url_source(&by_login), "coder_login", "{by_login}");
    assert_eq!(
        by_login["coder"]["session_token"]["source"]["from"],
        "coder_login"
    );
    // No token value anywhere in what was shown.
    for v in [&flag, &by_env, &by_context, &by_login] {
        let text = v.to_string();
        for t in ["login-session-1234", "context-token-5678", "env-token-9012"] {
            assert!(!text.contains(t), "{text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contexts_are_added_used_by_flag_env_and_use_and_removed() {
    let sim = sim(2000.0).await;
    let home = Home::new();
    let secret = "context-secret-not-in-the-file";
    let token = home.token_file("coder-token", CODER_SESSION_TOKEN);
    let bad_token = home.token_file("bad-token", secret);
    let coder_url = sim.coder_url();
    for (name, file) in [("good", &token), ("bad", &bad_token)] {
        let run = home.run(
            &[
                "context",
                "add",
                name,
                "--coder-url",
                &coder_url,
                "--coder-session-token-file",
                file.to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(run.code, 0, "{}", run.show());
    }
    // The file: mode 0600, no token, only where tokens come from.
    let text = std::fs::read_to_string(home.config_file()).unwrap();
    assert!(
        !text.contains(CODER_SESSION_TOKEN) && !text.contains(secret),
        "{text}"
    );
    assert!(text.contains(&token.display().to_string()), "{text}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(home.config_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    // The first context added became the current one.
    let list = home.run(&["context", "list"], &[]);
    assert!(list.stdout.contains("* good"), "{}", list.show());
    assert!(lists_alice_dev(&home.run(&["coder", "list"], &[])));

    // By flag, by FLEET_CONTEXT, by `use`: "bad" sends the wrong token (401, exit 1).
    let by_flag = home.run(&["--context", "bad", "coder", "list"], &[]);
    assert_eq!(by_flag.code, 1, "{}", by_flag.show());
    let by_env = home.run(&["coder", "list"], &[("FLEET_CONTEXT", "bad")]);
    assert_eq!(by_env.code, 1, "{}", by_env.show());
    assert!(lists_alice_dev(&home.run(
        &["--context", "good", "coder", "list"],
        &[("FLEET_CONTEXT", "bad")]
    )));
    let used = home.run(&["context", "use", "bad"], &[]);
    assert_eq!(used.code, 0, "{}", used.show());
    assert_eq!(home.run(&["coder", "list"], &[]).code, 1);
    assert!(
        !by_flag.stderr.contains(secret) && !by_flag.stdout.contains(secret),
        "{}",
        by_flag.show()
    );

    // Removed: gone from the list; the current context is cleared with it.
    let removed = home.run(&["context", "remove", "bad"], &[]);
    assert_eq!(removed.code, 0, "{}", removed.show());
    let list = home.json(&["context", "list", "-o", "json"], &[]);
    assert_eq!(list["current_context"], Value::Null, "{list}");
    assert!(list["contexts"].get("bad").is_none(), "{list}");
    assert!(list["contexts"].get("good").is_some(), "{list}");
    let again = home.run(&["context", "remove", "bad"], &[]);
    assert_eq!(again.code, 2, "{}", again.show());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_refuses_a_token_and_names_variables_instead() {
    let sim = sim(2000.0).await;
    let home = Home::new();
    let refused = home.run(
        &[
            "context",
            "add",
            "x",
            "--coder-url",
            &sim.coder_url(),
            "--coder-session-token",
            "raw-token-value",
        ],
        &[],
    );
    assert_eq!(refused.code, 2, "{}", refused.show());
    assert!(
        refused.stderr.contains("never holds a token"),
        "{}",
        refused.show()
    );
    assert!(!home.config_file().exists());

    let run = home.run(
        &[
            "context",
            "add",
            "x",
            "--coder-url",
            &sim.coder_url(),
            "--coder-session-token-env",
            "MY_CODER_TOKEN",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.show());
    let ok = home.run(
        &["coder", "list"],
        &[("MY_CODER_TOKEN", CODER_SESSION_TOKEN)],
    );
    assert!(lists_alice_dev(&ok), "{}", ok.show());
    let unset = home.run(&["coder", "list"], &[]);
    assert_eq!(unset.code, 2, "{}", unset.show());
    assert!(unset.stderr.contains("MY_CODER_TOKEN"), "{}", unset.show());
    // Showing and checking the context say so instead of failing.
    let show = home.run(&["context", "show"], &[]);
    assert_eq!(show.code, 0, "{}", show.show());
    assert!(show.stderr.contains("MY_CODER_TOKEN"), "{}", show.show());
    let doctor = home.run(&["doctor"], &[]);
    assert_eq!(doctor.code, 1, "{}", doctor.show());
    assert!(
        doctor.stderr.contains("MY_CODER_TOKEN"),
        "{}",
        doctor.show()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_context_is_refused_with_exit_2_before_any_request() {
    let server = MockServer::start_async().await;
    let any = server
        .mock_async(|when, then| {
            when.any_request();
            then.status(200).json_body(serde_json::json!({}));
        })
        .await;
    let home = Home::new();
    let token = home.token_file("t", "a-token-123456");
    for name in ["prod", "staging"] {
        let run = home.run(
            &[
                "context",
                "add",
                name,
                "--coder-url",
                &server.base_url(),
                "--coder-session-token-file",
                token.to_str().unwrap(),
                "--molecule-cp-url",
                &server.base_url(),
                "--cp-admin-token-file",
                token.to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(run.code, 0, "{}", run.show());
    }
    let env = [
        ("CODER_URL", server.base_url()),
        ("MOLECULE_CP_URL", server.base_url()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for (args, extra) in [
        (vec!["--context", "nope", "coder", "list"], vec![]),
        (
            vec!["molecule", "migration-status", "ws-1"],
            vec![("FLEET_CONTEXT", "nope")],
        ),
        (vec!["--context", "nope", "doctor"], vec![]),
    ] {
        let mut all = env.clone();
        all.extend(extra);
        let run = home.run(&args, &all);
        assert_eq!(run.code, 2, "{args:?}: {}", run.show());
        assert!(
            run.stderr.contains("\"nope\"") && run.stderr.contains("prod, staging"),
            "lists the contexts: {}",
            run.show()
        );
    }
    assert_eq!(any.calls_async().await, 0, "nothing was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_config_file_names_its_line_and_nothing_is_sent() {
    let server = MockServer::start_async().await;
    let any = server
        .mock_async(|when, then| {
            when.any_request();
            then.status(200).json_body(serde_json::json!({}));
        })
        .await;
    let home = Home::new();
    std::fs::create_dir_all(home.config_file().parent().unwrap()).unwrap();
    for (text, line) in [
        ("current-context = \"a\"\n[contexts.a\n", 2),
        (
            "current-context = \"a\"\n\n[contexts.a.coder]\nurl = \"http://x\"\nsession-token = \"abc\"\n",
            5,
        ),
    ] {
        std::fs::write(home.config_file(), text).unwrap();
        let run = home.run(
            &["coder", "list"],
            &[
                ("CODER_URL", &server.base_url()),
                ("CODER_SESSION_TOKEN", "tok-123456"),
            ],
        );
        assert_eq!(run.code, 2, "{}", run.show());
        assert!(
            run.stderr.contains(&format!("line {line}"))
                && run
                    .stderr
                    .contains(&home.config_file().display().to_string()),
            "{}",
            run.show()
        );
    }
    assert_eq!(any.calls_async().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_file_others_can_read_gets_a_warning_not_an_error() {
    let sim = sim(2000.0).await;
    let home = Home::new();
    let token = home.token_file("loose-token", CODER_SESSION_TOKEN);
    set_mode(&token, 0o644);
    let path = token.display().to_string();
    let run = home.run(
        &["coder", "list", "--coder-session-token-file", &path],
        &[("CODER_URL", &sim.coder_url())],
    );
    assert!(lists_alice_dev(&run), "{}", run.show());
    assert!(
        run.stderr.contains(&format!("chmod 600 {path}")),
        "{}",
        run.show()
    );
    set_mode(&token, 0o600);
    let run = home.run(
        &["coder", "list", "--coder-session-token-file", &path],
        &[("CODER_URL", &sim.coder_url())],
    );
    assert!(!run.stderr.contains("chmod"), "{}", run.show());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_says_what_works_and_what_to_do() {
    let sim = sim(2000.0).await;
    let home = Home::new();
    let coder_token = home.token_file("coder", CODER_SESSION_TOKEN);
    let cp_token = home.token_file("cp", CP_ADMIN_TOKEN);
    let wrong = home.token_file("wrong", "a-refused-token-000");
    let add = |name: &str, coder: &Path, cp: &Path| {
        let run = home.run(
            &[
                "context",
                "add",
                name,
                "--coder-url",
                &sim.coder_url(),
                "--coder-session-token-file",
                coder.to_str().unwrap(),
                "--molecule-cp-url",
                &sim.cp_url(),
                "--cp-admin-token-file",
                cp.to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(run.code, 0, "{}", run.show());
    };
    add("works", &coder_token, &cp_token);
    add("refused", &wrong, &cp_token);
    add("cp-refused", &coder_token, &wrong);
    for (name, key) in [
        ("tenant-ok", ORG_API_KEY),
        ("tenant-refused", "a-refused-key-000"),
    ] {
        let file = home.token_file(name, key);
        let run = home.run(
            &[
                "context",
                "add",
                name,
                "--molecule-cp-url",
                &sim.cp_url(),
                "--cp-admin-token-file",
                cp_token.to_str().unwrap(),
                "--molecule-api-url",
                &sim.tenant_url(),
                "--molecule-org-api-key-file",
                file.to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(run.code, 0, "{}", run.show());
    }
    sim.clear_requests();

    let run = home.run(&["--context", "works", "doctor"], &[]);
    assert_eq!(run.code, 0, "{}", run.show());
    assert!(run.stdout.contains("Coder: works"), "{}", run.show());
    assert!(
        run.stdout.contains("alice"),
        "who the token is: {}",
        run.show()
    );
    assert!(
        run.stdout.contains("/cp/admin"),
        "the layout: {}",
        run.show()
    );
    assert!(
        run.stdout.contains("context works"),
        "sources: {}",
        run.show()
    );
    let json = home.json(&["--context", "works", "doctor", "-o", "json"], &[]);
    assert_eq!(json["ok"], true, "{json}");
    assert_eq!(json["coder"]["report"]["identity"]["username"], "alice");
    assert_eq!(json["coder"]["report"]["on_success"], true);
    assert_eq!(
        json["coder"]["report"]["websockets"]["available"], true,
        "{json}"
    );
    assert_eq!(json["molecule"]["report"]["cp_admin_prefix"], "/cp/admin");

    let run = home.run(&["--context", "refused", "doctor"], &[]);
    assert_eq!(run.code, 1, "{}", run.show());
    assert!(
        run.stdout.contains("token was refused (401)"),
        "{}",
        run.show()
    );
    assert!(run.stdout.contains("Molecule: works"), "{}", run.show());
    let run = home.run(&["--context", "cp-refused", "doctor", "-o", "json"], &[]);
    assert_eq!(run.code, 1, "{}", run.show());
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        json["molecule"]["report"]["checks"][0]["problem"]["problem"], "token_refused",
        "{json}"
    );
    // The tenant API: a made-up workspace's "not found" proves the key; a refused key fails.
    let run = home.run(&["--context", "tenant-ok", "doctor"], &[]);
    assert_eq!(run.code, 0, "{}", run.show());
    assert!(
        run.stdout.contains("Coder: not configured"),
        "{}",
        run.show()
    );
    let run = home.run(
        &["--context", "tenant-refused", "doctor", "-o", "json"],
        &[],
    );
    assert_eq!(run.code, 1, "{}", run.show());
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        json["molecule"]["report"]["checks"][1]["name"], "tenant",
        "{json}"
    );
    assert_eq!(
        json["molecule"]["report"]["checks"][1]["problem"]["problem"], "token_refused",
        "{json}"
    );
    // doctor only reads.
    let writes = changes(&sim);
    assert!(writes.is_empty(), "{writes:?}");
    for t in ["a-refused-token-000", CODER_SESSION_TOKEN, CP_ADMIN_TOKEN] {
        assert!(!run.stdout.contains(t) && !run.stderr.contains(t));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_a_hanging_server_within_its_bound() {
    // Accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            keep.lock().unwrap().push(s);
        }
    });
    let home = Home::new();
    let started = Instant::now();
    let run = home.run(
        &["doctor", "--timeout", "1s"],
        &[("CODER_URL", &url), ("CODER_SESSION_TOKEN", "tok-123456")],
    );
    let took = started.elapsed();
    assert_eq!(run.code, 1, "{}", run.show());
    assert!(
        run.stdout
            .contains(&format!("{url} did not answer within 1s")),
        "{}",
        run.show()
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert!(!held.lock().unwrap().is_empty(), "it was reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_tells_a_failed_tls_handshake_from_an_unreachable_server() {
    // A plain-HTTP server reached as https: the port answers, the handshake fails.
    let plain = MockServer::start_async().await;
    let tls_url = plain.base_url().replacen("http://", "https://", 1);
    let closed = format!(
        "https://127.0.0.1:{}",
        crate::support::reliability::closed_port()
    );
    let home = Home::new();
    for (url, problem, words) in [
        (&tls_url, "tls", "TLS handshake"),
        (&closed, "unreachable", "could not be reached"),
    ] {
        let run = home.run(
            &["doctor", "-o", "json", "--timeout", "5s"],
            &[("CODER_URL", url), ("CODER_SESSION_TOKEN", "tok-123456")],
        );
        assert_eq!(run.code, 1, "{}", run.show());
        let json: Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(
            json["coder"]["report"]["checks"][0]["problem"]["problem"], problem,
            "{json}"
        );
        assert!(
            json["coder"]["advice"][0].as_str().unwrap().contains(words),
            "{json}"
        );
    }
}

#[test]
fn doctor_with_nothing_configured_exits_2() {
    let home = Home::new();
    let run = home.run(&["doctor"], &[]);
    assert_eq!(run.code, 2, "{}", run.show());
    assert!(
        run.stdout.contains("Nothing is configured"),
        "{}",
        run.show()
    );
    assert!(run.stdout.contains("coder login"), "{}", run.show());
}

#[test]
fn fleet_sim_prints_the_context_add_command_that_saves_it() {
    let home = Home::new();
    let mut child = home
        .cmd(&["-o", "json", "sim", "--listen", "127.0.0.1:0"], &[])
        .stderr(Stdio::null())
        .spawn()
        .expect("fleet sim starts");
    // One JSON document (pretty-printed over several lines), then it serves.
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut text = String::new();
    let printed: Value = loop {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
        assert!(n > 0, "fleet sim ended early: {text}");
        text.push_str(&line);
        if let Ok(v) = serde_json::from_str(&text) {
            break v;
        }
    };
    let command = printed["context_add"]
        .as_str()
        .expect("context_add")
        .to_string();
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(&words[..4], ["fleet", "context", "add", "sim"], "{command}");
    // Run it as printed, then use the context with the exported token variables.
    let run = home.run(&words[1..], &[]);
    assert_eq!(run.code, 0, "{}", run.show());
    let env: Vec<(String, String)> = printed["env"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.contains("TOKEN") || k.contains("KEY"))
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let doctor = home.run(&["--context", "sim", "doctor"], &env);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(doctor.code, 0, "{}", doctor.show());
    assert!(doctor.stdout.contains("context sim"), "{}", doctor.show());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coder_login_context_uses_what_coder_login_stored() {
    let sim = sim(2000.0).await;
    let home = Home::new();
    let added = home.run(&["context", "add", "mine", "--coder-login"], &[]);
    assert_eq!(added.code, 0, "{}", added.show());
    assert!(
        added.stderr.contains("run `coder login URL`"),
        "{}",
        added.show()
    );
    let before = home.run(&["coder", "list"], &[]);
    assert_eq!(before.code, 2, "{}", before.show());
    assert!(before.stderr.contains("coder login"), "{}", before.show());
    home.coder_login(&home.coder_dir(), &sim.coder_url(), CODER_SESSION_TOKEN);
    let run = home.run(&["coder", "list"], &[]);
    assert!(lists_alice_dev(&run), "{}", run.show());
    let show = home.json(&["context", "show", "-o", "json"], &[]);
    assert_eq!(
        show["coder"]["url"]["source"]["from"], "coder_login",
        "{show}"
    );
    assert_eq!(show["coder"]["url"]["source"]["context"], "mine", "{show}");
}
