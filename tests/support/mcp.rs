//! The built `fleet-mcp`: one way to start it with a clean environment ([`fleet_mcp`], a small
//! builder for what a test adds), driven by rmcp's own client over stdio (a child process,
//! [`FleetMcp::connect`]) or served over streamable HTTP ([`FleetMcp::serve_http`], with
//! [`McpHttp`] sending JSON-RPC as an HTTP client does, so that a test can read the wire).

use std::{ffi::OsStr, process::Stdio, time::Duration};

use fleet::sim::RunningSim;
use rmcp::{
    ClientHandler, Peer, RoleClient, ServiceExt,
    model::{
        CallToolRequestParams, CallToolResult, NumberOrString, ProgressToken, RequestMetaObject,
    },
    service::RunningService,
    transport::TokioChildProcess,
};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::cli::POLL_INTERVAL_MS;

/// Calls `tool` with `args` (a JSON object) and waits up to three minutes for the answer (a
/// tool error is an answer too).
pub async fn call_tool(peer: &Peer<RoleClient>, tool: &str, args: Value) -> CallToolResult {
    answer_of(peer, params(tool, args)).await
}

/// [`call_tool`] asking for progress notifications under the token `progress`.
pub async fn call_tool_with_progress(
    peer: &Peer<RoleClient>,
    tool: &str,
    args: Value,
    progress: i64,
) -> CallToolResult {
    let mut params = params(tool, args);
    params.meta = Some(RequestMetaObject::with_progress_token(ProgressToken(
        NumberOrString::Number(progress),
    )));
    answer_of(peer, params).await
}

fn params(tool: &str, args: Value) -> CallToolRequestParams {
    let args = args
        .as_object()
        .expect("a tool's arguments are a JSON object");
    CallToolRequestParams::new(tool.to_string()).with_arguments(args.clone())
}

async fn answer_of(peer: &Peer<RoleClient>, params: CallToolRequestParams) -> CallToolResult {
    tokio::time::timeout(Duration::from_secs(180), peer.call_tool(params))
        .await
        .expect("answered within three minutes")
        .expect("the call is answered")
}

/// A tool result's content blocks as JSON text (what a test looks for words in).
pub fn text_of(result: &CallToolResult) -> String {
    serde_json::to_string(&result.content).expect("content serializes")
}

/// The built `fleet-mcp` about to start with `args` and a clean environment: every variable
/// cleared (so no user configuration, no HOME, no proxy) but PATH, then
/// `FLEET_POLL_INTERVAL_MS` ([`POLL_INTERVAL_MS`]). Add what the test points it at, then
/// connect to it ([`FleetMcp::connect`], [`FleetMcp::connect_with`]), serve it over HTTP
/// ([`FleetMcp::serve_http`]) or run it to its end ([`FleetMcp::output`]).
pub fn fleet_mcp(args: &[&str]) -> FleetMcp {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_fleet-mcp"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FLEET_POLL_INTERVAL_MS", POLL_INTERVAL_MS);
    FleetMcp { cmd }
}

/// A `fleet-mcp` being set up: see [`fleet_mcp`].
#[derive(Debug)]
pub struct FleetMcp {
    cmd: std::process::Command,
}

impl FleetMcp {
    /// More arguments.
    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> FleetMcp {
        self.cmd.args(args);
        self
    }

    /// One more variable.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> FleetMcp {
        self.cmd.env(key, value);
        self
    }

    /// More variables.
    pub fn envs<K: AsRef<OsStr>, V: AsRef<OsStr>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> FleetMcp {
        self.cmd.envs(vars);
        self
    }

    /// The variables of a list such as `[("CODER_URL", url)]`.
    pub fn vars(self, vars: &[(&str, String)]) -> FleetMcp {
        self.envs(vars.iter().map(|(k, v)| (*k, v)))
    }

    /// Without the variable `key`.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> FleetMcp {
        self.cmd.env_remove(key);
        self
    }

    /// Pointed at the simulator `sim`: both planes, its URLs and tokens.
    pub fn sim(self, sim: &RunningSim) -> FleetMcp {
        self.envs(sim.env_vars())
    }

    /// Pointed at a Coder at `url` with `session_token`.
    pub fn coder(self, url: &str, session_token: &str) -> FleetMcp {
        self.env("CODER_URL", url)
            .env("CODER_SESSION_TOKEN", session_token)
    }

    /// Pointed at a Molecule control plane at `cp_url` with `admin_token`.
    pub fn molecule(self, cp_url: &str, admin_token: &str) -> FleetMcp {
        self.env("MOLECULE_CP_URL", cp_url)
            .env("CP_ADMIN_API_TOKEN", admin_token)
    }

    /// Another poll interval than [`POLL_INTERVAL_MS`] (a test that needs another pace says so).
    pub fn poll_interval_ms(self, ms: u64) -> FleetMcp {
        self.env("FLEET_POLL_INTERVAL_MS", ms.to_string())
    }

    /// No `FLEET_POLL_INTERVAL_MS`: the polling a host's user gets.
    pub fn default_polling(self) -> FleetMcp {
        self.env_remove("FLEET_POLL_INTERVAL_MS")
    }

    /// The command for tokio, to spawn and drive.
    pub fn command(self) -> tokio::process::Command {
        tokio::process::Command::from(self.cmd)
    }

    /// The command, to spawn and drive without a runtime.
    pub fn std_command(self) -> std::process::Command {
        self.cmd
    }

    /// Runs it to its end with stdin closed (`--help`, `--check`, a refusal at start).
    pub fn output(mut self) -> std::process::Output {
        self.cmd
            .stdin(Stdio::null())
            .output()
            .expect("fleet-mcp runs")
    }

    /// rmcp's child-process transport for it, started (its process id is `.id()`).
    pub fn transport(self) -> TokioChildProcess {
        TokioChildProcess::new(self.command()).expect("fleet-mcp starts")
    }

    /// The plain rmcp client connected over stdio, once the MCP handshake is done.
    pub async fn connect(self) -> RunningService<RoleClient, ()> {
        self.connect_with(()).await
    }

    /// `handler` connected over stdio, once the MCP handshake is done.
    pub async fn connect_with<H: ClientHandler>(self, handler: H) -> RunningService<RoleClient, H> {
        handler
            .serve(self.transport())
            .await
            .expect("MCP handshake")
    }

    /// [`FleetMcp::connect_with`], with fleet-mcp's log (its stderr) read from the start, so
    /// that it never blocks on a full pipe: the task ends with the whole log once fleet-mcp
    /// has exited.
    pub async fn connect_logged<H: ClientHandler>(
        self,
        handler: H,
    ) -> (
        RunningService<RoleClient, H>,
        tokio::task::JoinHandle<String>,
    ) {
        let (transport, stderr) = TokioChildProcess::builder(self.command())
            .stderr(Stdio::piped())
            .spawn()
            .expect("fleet-mcp starts");
        let log = tokio::spawn(async move {
            let mut text = String::new();
            if let Some(mut stderr) = stderr {
                let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text).await;
            }
            text
        });
        let client = handler.serve(transport).await.expect("MCP handshake");
        (client, log)
    }

    /// Serves over streamable HTTP on a free loopback port (`--http 127.0.0.1:0`), once it says
    /// where (within 30 s); its log is read and dropped so that it never blocks on a full pipe.
    pub async fn serve_http(self) -> McpHttp {
        let mut child = self
            .args(["--http", "127.0.0.1:0"])
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("fleet-mcp starts");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split("serving MCP at http://").nth(1) {
                    return rest.split('/').next().unwrap_or_default().to_string();
                }
            }
            panic!("fleet-mcp ended without serving");
        })
        .await
        .expect("fleet-mcp says where it serves within 30 s");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        McpHttp { child, addr }
    }
}

/// `handler` connected to the `fleet-mcp` that `cmd` starts, once the MCP handshake is done.
pub async fn serve<H: ClientHandler>(
    handler: H,
    cmd: tokio::process::Command,
) -> RunningService<RoleClient, H> {
    handler
        .serve(TokioChildProcess::new(cmd).expect("fleet-mcp starts"))
        .await
        .expect("MCP handshake")
}

/// `fleet-mcp` against `sim` (see [`fleet_mcp`]), as a command.
pub fn mcp_command_on(sim: &RunningSim) -> tokio::process::Command {
    fleet_mcp(&[]).sim(sim).command()
}

/// The plain rmcp client connected to `fleet-mcp` against `sim`.
pub async fn mcp_on(sim: &RunningSim) -> RunningService<RoleClient, ()> {
    fleet_mcp(&[]).sim(sim).connect().await
}

/// The MCP protocol revision [`McpHttp`] speaks.
pub const PROTOCOL_VERSION: &str = "2025-06-18";

/// A `fleet-mcp` serving streamable HTTP on loopback (see [`FleetMcp::serve_http`]); killed on
/// drop. Its methods send JSON-RPC as a streamable-HTTP client does and hand back the raw
/// answer, so that a test sees exactly what went over the wire.
pub struct McpHttp {
    pub child: tokio::process::Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
}

impl Drop for McpHttp {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl McpHttp {
    /// The MCP endpoint, `http://127.0.0.1:PORT/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// An HTTP client for it: no proxy (reqwest would send even loopback to one), no overall
    /// timeout (a long tool call streams for as long as it runs; a test bounds what it waits).
    pub fn http_client() -> reqwest::Client {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("an HTTP client")
    }

    /// A JSON-RPC `body` POSTed to the endpoint with the headers a client sends (content type,
    /// accept); the session headers too when `session` is given.
    pub fn post(&self, body: &str, session: Option<&str>) -> reqwest::RequestBuilder {
        let mut request = Self::http_client()
            .post(self.url())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string());
        if let Some(id) = session {
            request = request
                .header("mcp-session-id", id)
                .header("mcp-protocol-version", PROTOCOL_VERSION);
        }
        request
    }

    /// The handshake as a client does it (`initialize`, then `notifications/initialized`):
    /// the session id, and the body of the InitializeResult.
    pub async fn initialize(&self) -> (String, String) {
        let init = self
            .post(&initialize_request("fleet-tests"), None)
            .send()
            .await
            .expect("initialize is answered");
        assert_eq!(init.status().as_u16(), 200, "initialize: {init:?}");
        let session = init
            .headers()
            .get("mcp-session-id")
            .expect("initialize opens a session")
            .to_str()
            .expect("a session id in ASCII")
            .to_string();
        let body = init.text().await.expect("an InitializeResult");
        let done = self
            .post(
                r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
                Some(&session),
            )
            .send()
            .await
            .expect("initialized is answered");
        assert!(done.status().is_success(), "initialized: {}", done.status());
        (session, body)
    }
}

/// An `initialize` request from a client named `client_name`, id 1.
pub fn initialize_request(client_name: &str) -> String {
    serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": PROTOCOL_VERSION, "capabilities": {},
        "clientInfo": {"name": client_name, "version": "1"}}})
    .to_string()
}
