// A stand-in MCP host: the TypeScript SDK's client (what Claude Desktop, Cursor and most hosts
// are built on) with short request timeouts drives fleet-mcp against a slow simulator.
// Checks: every long tool answers before the host's timeout; a host timeout (and its
// notifications/cancelled) during a stop leaves no workspace stopped; get_operation follows
// each operation to its end; on exit fleet-mcp finishes a stop→start already begun.
//
// Usage: node long-operations.mjs FLEET_MCP FLEET   (run by long-operations.sh)
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { spawn } from "node:child_process";
import assert from "node:assert/strict";

const [fleetMcp, fleet] = process.argv.slice(2);
const SPEED = "0.5"; // a stop takes ~10 s, a start ~14 s
const t0 = Date.now();
const log = (...a) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);

async function connect(command, args, env) {
  const transport = new StdioClientTransport({ command, args, env: { ...process.env, ...env }, stderr: "pipe" });
  const client = new Client({ name: "fleet-long-ops-host", version: "1.0.0" });
  let stderr = "";
  transport.stderr?.on("data", (d) => (stderr += d.toString()));
  await client.connect(transport);
  return { client, transport, stderr: () => stderr };
}

/** A call with a host timeout; returns the structured result, or the timeout error. */
async function call(client, name, args, timeoutMs, onprogress) {
  const began = Date.now();
  try {
    const r = await client.callTool({ name, arguments: args }, undefined, { timeout: timeoutMs, onprogress });
    return { result: r, ms: Date.now() - began };
  } catch (e) {
    return { error: e, ms: Date.now() - began };
  }
}

function structured(r) {
  assert.ok(r.result, `expected an answer, got ${r.error}`);
  assert.ok(!r.result.isError, `tool error: ${JSON.stringify(r.result.content)}`);
  return r.result.structuredContent;
}

/** Follows an operation with short get_operation calls until it is done. */
async function follow(client, id, limitMs = 90_000) {
  const until = Date.now() + limitMs;
  for (;;) {
    const r = await call(client, "get_operation", { operation_id: id, wait_seconds: 3 }, 5_000);
    assert.ok(r.result, `get_operation timed out: ${r.error}`);
    assert.ok(r.ms < 5_000);
    const s = structured(r);
    if (s.done) return s;
    assert.ok(Date.now() < until, `operation ${id} did not end: ${JSON.stringify(s)}`);
  }
}

async function status(client, name) {
  const s = structured(await call(client, "show_agent", { agent_name: name }, 5_000));
  return s.status;
}

// ---- 1. fleet-mcp --sim at a slow speed -----------------------------------------------------
const { client, transport } = await connect(fleetMcp, ["--sim", "--sim-speed", SPEED]);
const tools = (await client.listTools()).tools.map((t) => t.name);
for (const t of ["get_operation", "cancel_operation", "list_operations"]) assert.ok(tools.includes(t), `${t} listed`);

// a. update_agent with wait_seconds under the host's timeout: answers with an operation id.
let progress = 0;
const a = await call(client, "update_agent", { agent_name: "alice/dev", wait_seconds: 3 }, 5_000, () => progress++);
const aAnswer = structured(a);
assert.equal(aAnswer.done, false);
assert.ok(aAnswer.operation_id, "an operation id");
assert.ok(aAnswer.follow.includes("get_operation"));
assert.ok(progress > 0, "progress notifications were streamed meanwhile");
log(`update_agent answered in ${a.ms} ms: ${aAnswer.operation_state}, ${aAnswer.latest_step}`);

// b. restart_agent with the default wait (25 s) and a 4 s host: the host times out during
//    the stop and sends notifications/cancelled. The restart must go on, and end running.
const b = await call(client, "restart_agent", { agent_name: "bob/dev" }, 4_000);
assert.ok(b.error, "the host timed out");
assert.match(String(b.error), /timed out/i);
log(`restart_agent: the host gave up after ${b.ms} ms (${b.error.message})`);
await new Promise((r) => setTimeout(r, 1_000));
const listed = structured(await call(client, "list_operations", {}, 5_000));
const bOp = listed.operations.find((o) => o.kind === "restart" && o.targets.includes("bob/dev"));
assert.ok(bOp, `the restart is listed: ${JSON.stringify(listed)}`);
assert.ok(!bOp.done, "the restart goes on after the host's cancellation");
log(`restart of bob/dev goes on as ${bOp.id}: ${bOp.latest_step}`);

// c. update_agents, then cancel_operation gracefully during the first workspace's stop:
//    it is started again, the second is never begun.
const c = await call(
  client,
  "update_agents",
  { agent_names: ["alice/current", "alice/secure-shell"], force: true, parallel: 1, wait_seconds: 4 },
  6_000,
);
const cAnswer = structured(c);
assert.equal(cAnswer.done, false);
const cancelled = structured(await call(client, "cancel_operation", { operation_id: cAnswer.operation_id }, 5_000));
assert.ok(["cancelling", "cancelled"].includes(cancelled.state), JSON.stringify(cancelled));
log(`update_agents ${cAnswer.operation_id} cancelled gracefully: ${cancelled.state}`);

// d. wait_for_workspace_migration with its defaults answers before a 30 s host timeout.
structured(await call(client, "migrate_workspace_provider", { workspace_id: "ws-aws-demo", to: "hetzner", confirm: true }, 5_000));
const d = await call(client, "wait_for_workspace_migration", { workspace_id: "ws-aws-demo" }, 30_000);
const dAnswer = structured(d);
assert.equal(dAnswer.outcome, "still_running");
assert.ok(dAnswer.operation_id);
assert.ok(d.ms < 30_000);
log(`wait_for_workspace_migration answered in ${d.ms} ms: ${dAnswer.outcome}`);

// Follow every operation to its end.
const aEnd = await follow(client, aAnswer.operation_id);
assert.equal(aEnd.state, "succeeded", JSON.stringify(aEnd));
assert.equal(aEnd.workspaces[0].verdict, "updated");
const bEnd = await follow(client, bOp.id);
assert.equal(bEnd.state, "succeeded", JSON.stringify(bEnd));
const cEnd = await follow(client, cAnswer.operation_id);
assert.equal(cEnd.state, "cancelled", JSON.stringify(cEnd));
const verdicts = Object.fromEntries(cEnd.workspaces.map((w) => [w.target, w.verdict]));
assert.equal(verdicts["alice/current"], "updated", JSON.stringify(cEnd));
assert.equal(verdicts["alice/secure-shell"], "not_started", JSON.stringify(cEnd));
for (const name of ["alice/dev", "bob/dev", "alice/current", "alice/secure-shell"]) {
  assert.equal(await status(client, name), "running", `${name} is running`);
}
log("every operation followed to its end; no workspace left stopped");
await transport.close();

// ---- 2. exit with a stop→start in flight: fleet-mcp finishes it ------------------------------
const sim = spawn(fleet, ["sim", "--listen", "127.0.0.1:0", "--speed", SPEED], { stdio: ["ignore", "pipe", "pipe"] });
const env = await new Promise((resolve, reject) => {
  let out = "";
  sim.stdout.on("data", (d) => {
    out += d.toString();
    const line = out.split("\n").find((l) => l.startsWith("export "));
    if (line) resolve(Object.fromEntries(line.slice(7).split(" ").map((kv) => kv.split("="))));
  });
  sim.on("exit", () => reject(new Error(`fleet sim exited: ${out}`)));
});
try {
  const first = await connect(fleetMcp, [], env);
  const u = structured(await call(first.client, "update_agent", { agent_name: "alice/dev", wait_seconds: 2 }, 4_000));
  assert.equal(u.done, false);
  // Close stdin with the update in flight (as a host does first; transport.close() would
  // also send SIGTERM and then SIGKILL after a few seconds, which no process outlives).
  const child = first.transport._process;
  const exited = new Promise((r) => child.on("exit", (code) => r(code)));
  child.stdin.end();
  const code = await exited;
  log(`fleet-mcp exited (${code}) after finishing: ${first.stderr().trim().split("\n").slice(-2).join(" | ")}`);
  assert.match(first.stderr(), /finished before exiting/);
  assert.doesNotMatch(first.stderr(), /left as it was/);
  const second = await connect(fleetMcp, [], env);
  const st = structured(await call(second.client, "show_agent", { agent_name: "alice/dev" }, 5_000));
  assert.equal(st.status, "running");
  assert.equal(st.outdated, false);
  await second.transport.close();
  log("on exit, the stop→start in flight was finished: alice/dev runs the new version");
} finally {
  sim.kill("SIGINT");
}
log("ok");
