// End-to-end tests of the web console (SPEC §17) in a real browser:
// Playwright (playwright-core) drives Debian's chromium against the real
// `agenttrace-audit serve` on loopback, with its embedded defaults (local
// storage, SQLite index).
//
//   node run.mjs            # AGENTTRACE_AUDIT_BIN, else target/debug/agenttrace-audit
//   AUDIT_CONSOLE_SCREENSHOTS=docs/console node run.mjs   # also writes the README's screenshots
//
// Prints one line per test and a summary ("N passed, M failed in T s")
// that .ci/run adds to its total. Every process started here is stopped
// by its PID at the end.

import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync, chmodSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../..");
const bin = process.env.AGENTTRACE_AUDIT_BIN || join(repo, "target/debug/agenttrace-audit");
const browserPath = process.env.CHROMIUM || "/usr/bin/chromium";
const shots = process.env.AUDIT_CONSOLE_SCREENSHOTS ? resolve(repo, process.env.AUDIT_CONSOLE_SCREENSHOTS) : null;
const ORG = "org-1";

const started = [];
const data = mkdtempSync(join(tmpdir(), "console-e2e-"));

function cli(...args) {
  const r = spawnSync(bin, ["--data-dir", data, ...args], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`agenttrace-audit ${args.join(" ")}: exit ${r.status}: ${r.stderr}`);
  return r.stdout.trim();
}

async function freePort() {
  const s = createServer();
  await new Promise((ok) => s.listen(0, "127.0.0.1", ok));
  const port = s.address().port;
  await new Promise((ok) => s.close(ok));
  return port;
}

async function startServe(dir = data, extra = []) {
  const port = await freePort();
  const child = spawn(bin, ["--data-dir", dir, "serve", "--listen", `127.0.0.1:${port}`, ...extra], {
    env: { ...process.env, AUDIT_CHECKPOINT_INTERVAL: "0.2", RUST_LOG: "warn" },
    stdio: ["ignore", "ignore", "inherit"],
  });
  started.push(child);
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 400; i++) {
    if (child.exitCode !== null) throw new Error(`serve exited with ${child.exitCode}`);
    try { if ((await fetch(`${base}/health`)).ok) return base; } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("serve did not answer /health");
}

/** A page on another loopback origin that frames `src` and hands `token` over by postMessage. */
async function hostPage(src, token, port) {
  port = port || await freePort();
  const server = createServer((req, res) => {
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
    res.end(`<!doctype html><title>Customer app</title><h1>Your audit log</h1>
<iframe id="audit" src="${src}" style="width:100%;height:600px;border:1px solid #ccc" title="Audit log"></iframe>
<script>
window.addEventListener("message", (ev) => {
  if (ev.data && ev.data.agenttrace_ready) document.getElementById("audit").contentWindow.postMessage({ agenttrace_token: ${JSON.stringify(token)} }, new URL(${JSON.stringify(src)}).origin);
});
</script>`);
  });
  await new Promise((ok) => server.listen(port, "127.0.0.1", ok));
  return { origin: `http://127.0.0.1:${port}`, close: () => new Promise((ok) => server.close(ok)) };
}

async function post(base, token, path, body) {
  const res = await fetch(base + path, { method: "POST", headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const json = await res.json();
  if (!res.ok) throw new Error(`${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

async function get(base, token, path) {
  return fetch(base + path, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
}

// ------------------------------------------------------------------ tests

const tests = [];
const test = (name, fn) => tests.push({ name, fn });
let base, admin, reader, browser;
const ids = {};

async function signedIn(context, token = admin, hash = "#/search") {
  const page = await context.newPage();
  await page.goto(`${base}/console`);
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Events" }).waitFor();
  if (hash !== "#/search") await page.evaluate((h) => { location.hash = h; }, hash);
  return page;
}

async function rowsProjects(frameOrPage) {
  await frameOrPage.locator("table tbody tr").first().waitFor();
  return frameOrPage.locator("table tbody tr td:nth-child(7)").allTextContents();
}

test("the console is served with a strict CSP, no inline script, and framing refused", async () => {
  const res = await fetch(`${base}/console`);
  assert.equal(res.status, 200);
  const csp = res.headers.get("content-security-policy");
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  assert.equal(res.headers.get("x-frame-options"), "DENY");
  assert.equal(res.headers.get("x-content-type-options"), "nosniff");
  const html = await res.text();
  for (const tag of html.match(/<script\b[^>]*>/g)) assert.match(tag, /\bsrc=/, `inline script: ${tag}`);
  assert.doesNotMatch(html, /\sstyle=|\son[a-z]+=/, "no inline styles or handlers");
  const js = await fetch(`${base}/console/assets/app.js`);
  assert.equal(js.headers.get("content-type"), "text/javascript; charset=utf-8");
  assert.equal((await fetch(`${base}/console/assets/nope.js`)).status, 404);
});

test("sign in, filter by project, page with the cursor, and bookmark the search", async () => {
  const context = await browser.newContext();
  const errors = [];
  const page = await context.newPage();
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${base}/console`);
  await page.getByLabel("API token").fill("agta_000000000000_wrong");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText(/Cannot sign in/).waitFor();
  await page.getByLabel("API token").fill(admin);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Events" }).waitFor();
  assert.ok(!page.url().includes(admin), "the token is never in the URL");
  // Newest first by default, 50 a page: 121 events of p-1 and 5 of p-2 (+ the service's own records).
  await page.getByLabel("Project").fill("p-1");
  await page.getByRole("button", { name: "Search" }).click();
  await page.waitForURL(/project_id=p-1/);
  const first = await rowsProjects(page);
  assert.equal(first.length, 50);
  assert.ok(first.every((p) => p === "p-1"));
  const firstSeq = Number(await page.locator("table tbody tr td:nth-child(8)").first().textContent());
  await page.getByRole("link", { name: "Next page →" }).click();
  await page.waitForURL(/cursor=/);
  await page.waitForFunction((s) => Number(document.querySelector("table tbody tr td:nth-child(8)")?.textContent) < s, firstSeq);
  const second = await page.locator("table tbody tr td:nth-child(8)").allTextContents();
  assert.equal(second.length, 50);
  assert.ok(Number(second[0]) < firstSeq, "the next page continues down the log");
  await page.getByRole("button", { name: "← Previous page" }).click();
  await page.waitForFunction((s) => Number(document.querySelector("table tbody tr td:nth-child(8)")?.textContent) === s, firstSeq);
  // A bookmarked search opens as it was (same tab: the token is in session storage).
  await page.goto(`${base}/console#/search?project_id=p-2&order=asc`);
  await page.reload();
  const p2 = await rowsProjects(page);
  assert.deepEqual(p2, ["p-2", "p-2", "p-2", "p-2", "p-2"]);
  assert.equal(await page.getByLabel("Project").inputValue(), "p-2");
  assert.equal(await page.getByLabel("Newest first").isChecked(), false);
  // Every form control has a label.
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll("input, select")].filter((el) => !el.labels || el.labels.length === 0).map((el) => el.id));
  assert.deepEqual(unlabelled, []);
  // A new tab does not share the session: sign-in again.
  const other = await browser.newContext();
  const fresh = await other.newPage();
  await fresh.goto(`${base}/console#/search?project_id=p-2`);
  await fresh.getByLabel("API token").waitFor();
  await other.close();
  assert.deepEqual(errors, []);
  if (shots) {
    await page.goto(`${base}/console#/search?project_id=p-1`);
    await rowsProjects(page);
    await page.screenshot({ path: join(shots, "search.png"), fullPage: false });
  }
  await context.close();
});

test("event detail: every member, both times, the state diff, the request, and a proof checked in the browser", async () => {
  const context = await browser.newContext();
  const page = await signedIn(context, admin, `#/event/${ids.changed}`);
  await page.getByRole("heading", { name: "user.role_changed" }).waitFor();
  const changes = page.locator("table.diff");
  await changes.locator("tr.changed", { hasText: "role" }).waitFor();
  assert.match(await changes.locator("tr.changed", { hasText: "role" }).textContent(), /viewer.*admin/);
  assert.ok(await changes.locator("tr.added", { hasText: "mfa" }).count() === 1);
  await page.getByRole("heading", { name: "Request" }).waitFor();
  assert.match(await page.locator("p.times").textContent(), /UTC/);
  // The actor's e-mail is sealed in storage, shown revealed here.
  assert.match(await page.locator("dl.members").first().textContent(), /ada@example\.com/);
  // Only public API calls; the proof is checked with Web Crypto in the page.
  const calls = [];
  page.on("request", (r) => calls.push(new URL(r.url()).pathname));
  await page.getByRole("button", { name: "Check this event" }).click();
  const verdict = page.locator("[data-verdict]");
  await verdict.waitFor();
  assert.equal(await verdict.getAttribute("data-verdict"), "verified", await page.locator("ol.steps").textContent());
  assert.equal(await page.locator("ol.steps li.ok").count(), 5);
  assert.ok(calls.every((p) => p.startsWith("/v1/")), calls.join(" "));
  assert.ok(calls.some((p) => p.endsWith("/proof")) && calls.includes("/v1/checkpoint"));
  if (shots) await page.screenshot({ path: join(shots, "event.png"), fullPage: true });
  await context.close();
});

test("the browser's checks use the C2SP signed-note reference vector and catch a wrong signature", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/console`);
  const result = await page.evaluate(async () => {
    const v = await import("/console/assets/verify.js");
    // golang.org/x/mod/sumdb/note: the documented example key and note.
    const vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const note = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    const key = await v.parseVerifierKey(vkey);
    const text = await v.openNote(note, key);
    let tampered = "";
    try { await v.openNote(note.replace("cryptography", "cryptographY"), key); } catch (e) { tampered = e.message; }
    // RFC 8785 §3.2.2 / cyberphone testdata: number and key-order examples.
    const jcs = v.canonicalize({ b: [1e21, 1e-7, -0, 333333333.33333329], a: "\u20ac$\u000f\nA'B\"\\\\\"/", "\u00e9": 1, "\ud83d\ude00": 2, "\u0080": 3 });
    return { text, tampered, jcs };
  });
  assert.ok(result.text.startsWith("If you think"));
  assert.match(result.tampered, /does not verify/);
  assert.equal(result.jcs, '{"a":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/","b":[1e+21,1e-7,0,333333333.3333333],"\u0080":3,"é":1,"😀":2}');
  await context.close();
});

test("export of the current search streams a download through a single-use link", async () => {
  const context = await browser.newContext({ acceptDownloads: true });
  const page = await signedIn(context, admin, "#/search?project_id=p-2");
  await rowsProjects(page);
  await page.getByLabel("Export this search as").selectOption("csv");
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download" }).click()]);
  const csv = readFileSync(await download.path(), "utf8").trim().split("\n");
  assert.match(csv[0], /^sequence,event_id,/);
  assert.equal(csv.length, 1 + 5, "a header and the five p-2 events");
  assert.ok(csv.slice(1).every((line) => line.includes(",p-2,")));
  // The link worked once: the token never went into a URL.
  const used = download.url();
  assert.match(used, /\/v1\/export-links\/[0-9a-f]{48}$/);
  assert.equal((await fetch(used)).status, 404, "a download link works once");
  await page.getByLabel("Export this search as").selectOption("evidence");
  const [bundle] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download" }).click()]);
  const lines = readFileSync(await bundle.path(), "utf8").trim().split("\n");
  assert.ok(lines.length > 5, "the evidence bundle carries the checkpoint and proofs");
  await context.close();
});

test("a viewer token pinned to one project sees only it, framed by the origin it names", async () => {
  const hostPort = await freePort();
  const hostOrigin = `http://127.0.0.1:${hostPort}`;
  const minted = await post(base, admin, "/v1/viewer-tokens", { ttl_seconds: 600, filter: { project_id: "p-1" }, frame_ancestors: [hostOrigin] });
  // The API: another project is refused, another project's event is not found.
  assert.equal((await get(base, minted.token, "/v1/events?project_id=p-2")).status, 403);
  assert.equal((await get(base, minted.token, `/v1/events/${ids.p2}`)).status, 404);
  assert.equal((await get(base, minted.token, `/v1/events/${ids.p2}/proof?tree_size=1`)).status, 404);
  assert.equal((await get(base, minted.token, "/v1/export?format=csv")).status, 403, "no export unless granted");
  const page1 = await (await get(base, minted.token, "/v1/events?limit=1000")).json();
  assert.ok(page1.events.length >= 121 && page1.events.every((e) => e.project_id === "p-1"));
  // The embed page allows exactly that origin to frame it.
  const embedUrl = base + minted.embed_path;
  const res = await fetch(embedUrl);
  assert.match(res.headers.get("content-security-policy"), new RegExp(`frame-ancestors ${hostOrigin.replace(/\./g, "\\.")}$`));
  assert.equal(res.headers.get("x-frame-options"), null);
  assert.ok(!minted.embed_path.includes(minted.token.slice(5)), "the embed path does not carry the token");
  const good = await hostPage(embedUrl, minted.token, hostPort);
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(good.origin);
  const frame = page.frameLocator("#audit");
  const projects = await rowsProjects(frame);
  assert.ok(projects.length > 0 && projects.every((p) => p === "p-1"), projects.join(","));
  assert.equal(await frame.getByLabel("Project").isDisabled(), true);
  assert.equal(await frame.getByRole("link", { name: "Integrity" }).count(), 0, "the embedded view has search and detail only");
  assert.equal(await frame.getByRole("button", { name: "Download" }).count(), 0, "no export without the grant");
  if (shots) await page.screenshot({ path: join(shots, "embed.png"), fullPage: true });
  // Another origin cannot frame it: the browser refuses to render it.
  const evil = await hostPage(embedUrl, minted.token);
  const page2 = await context.newPage();
  await page2.goto(evil.origin);
  await page2.waitForTimeout(1500);
  const framed = page2.frames().find((f) => f !== page2.mainFrame());
  const rendered = framed ? await framed.evaluate(() => !!document.getElementById("main")).catch(() => false) : false;
  assert.equal(rendered, false, "a page of another origin must not render the console in a frame");
  await context.close();
  await good.close();
  await evil.close();
});

test("an expired viewer token is refused by the API and the embedded view", async () => {
  const minted = await post(base, admin, "/v1/viewer-tokens", { ttl_seconds: 1 });
  assert.equal((await get(base, minted.token, "/v1/whoami")).status, 200);
  await new Promise((r) => setTimeout(r, 2100));
  const res = await get(base, minted.token, "/v1/whoami");
  assert.equal(res.status, 401);
  assert.match((await res.json()).error.message, /expired/);
  assert.equal((await fetch(base + minted.embed_path)).status, 404, "its embed page has expired too");
  const context = await browser.newContext();
  const page = await context.newPage();
  const fresh = await post(base, admin, "/v1/viewer-tokens", { ttl_seconds: 1 });
  await new Promise((r) => setTimeout(r, 2100));
  await page.goto(`${base}/console#/search`);
  await page.evaluate(() => sessionStorage.clear());
  // A token read from the fragment is checked like any other.
  const m = await post(base, admin, "/v1/viewer-tokens", { ttl_seconds: 60 });
  await page.goto(`${base}${m.embed_path}#token=${encodeURIComponent(fresh.token)}`);
  await page.getByText(/This view cannot open: the viewer token has expired/).waitFor();
  assert.ok(!page.url().includes(fresh.token), "the fragment is cleared at once");
  await context.close();
});

test("read-only tokens see no admin pages; the integrity page verifies the log on demand", async () => {
  const context = await browser.newContext();
  const page = await signedIn(context, reader);
  assert.equal(await page.getByRole("link", { name: "Personal data" }).count(), 0);
  assert.equal(await page.getByRole("link", { name: "Viewer tokens" }).count(), 0);
  await context.close();
  const ctx2 = await browser.newContext();
  const adminPage = await signedIn(ctx2, admin, "#/integrity");
  await adminPage.getByRole("heading", { name: "Newest checkpoint" }).waitFor();
  await adminPage.getByText("tree size").waitFor();
  await adminPage.getByRole("button", { name: "Verify the log now" }).click();
  const verdict = adminPage.locator("[data-verdict]");
  await verdict.waitFor();
  assert.equal(await verdict.getAttribute("data-verdict"), "valid");
  if (shots) await adminPage.screenshot({ path: join(shots, "integrity.png"), fullPage: true });
  await ctx2.close();
});

test("legal holds and erasure from the personal-data page", async () => {
  const context = await browser.newContext();
  const page = await signedIn(context, admin, "#/personal-data");
  await page.getByRole("heading", { name: "Legal holds" }).waitFor();
  await page.getByText("No legal holds.").waitFor();
  await page.getByLabel("Subject's e-mail (empty: the whole organization)").fill("grace@example.com");
  await page.getByLabel("Reason").fill("litigation 7");
  await page.getByRole("button", { name: "Place hold" }).click();
  await page.getByText(/litigation 7/).waitFor();
  await page.getByLabel("Subject", { exact: true }).fill("grace@example.com");
  await page.getByLabel("I understand the erasure cannot be undone").check();
  await page.getByRole("button", { name: "Erase" }).click();
  await page.getByText(/Refused: .*hold/i).waitFor();
  await page.getByRole("button", { name: "Lift" }).click();
  await page.getByText("No legal holds.").waitFor();
  await page.getByLabel("I understand the erasure cannot be undone").check();
  await page.getByRole("button", { name: "Erase" }).click();
  await page.getByText(/Erased: 1 key\(s\) destroyed/).waitFor();
  // Her event now reads "[erased]" in the console.
  await page.evaluate((id) => { location.hash = `#/event/${id}`; }, ids.grace);
  await page.getByRole("heading", { name: "user.login" }).waitFor();
  assert.match(await page.locator("dl.members").first().textContent(), /\[erased\]/);
  await context.close();
});

test("on a phone-sized screen the search fits the width", async () => {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true });
  const page = await signedIn(context, admin);
  await rowsProjects(page);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
  if (shots) await page.screenshot({ path: join(shots, "phone.png") });
  await context.close();
});

test("time presets, a custom range and the live tail", async () => {
  const context = await browser.newContext();
  const page = await signedIn(context, admin);
  await page.getByLabel("Time", { exact: true }).selectOption("1h");
  await page.getByLabel("Project").fill("p-2");
  await page.getByRole("button", { name: "Search" }).click();
  await page.waitForURL(/preset=1h/);
  assert.equal((await rowsProjects(page)).length, 5, "all of p-2 was recorded within the hour");
  // A custom range in the past holds nothing.
  await page.getByLabel("Time", { exact: true }).selectOption("custom");
  await page.getByLabel("From (your time)").fill("2020-01-01T00:00");
  await page.getByLabel("Until (your time)").fill("2020-02-01T00:00");
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByText("No events match.").waitFor();
  // Live tail: a new event appears without a reload, marked as new.
  await page.evaluate(() => { location.hash = "#/search?project_id=p-3&live=1"; });
  await page.getByText("No events match.").waitFor();
  await post(base, admin, "/v1/events", { project_id: "p-3", event_type: "trace.shared", action: "share", actor_type: "user", actor_id: "u-live" });
  await page.locator("table tbody tr.new", { hasText: "trace.shared" }).waitFor({ timeout: 15000 });
  await context.close();
});

test("keyboard only: skip link, navigation, and opening an event", async () => {
  const context = await browser.newContext();
  const page = await signedIn(context, admin, "#/search?project_id=p-2");
  await rowsProjects(page);
  // Each view puts focus on its heading; backwards from there are the
  // navigation and, first of all, the skip link.
  assert.equal(await page.evaluate(() => document.activeElement.id), "page-title");
  const back = [];
  for (let i = 0; i < 10; i++) {
    await page.keyboard.press("Shift+Tab");
    back.push(await page.evaluate(() => document.activeElement.textContent.trim()));
    if (back.at(-1) === "Skip to content") break;
  }
  assert.deepEqual(back.slice(-3), ["Events", "AgentTrace Audit", "Skip to content"], back.join(" ← "));
  await page.keyboard.press("Enter");
  assert.equal(await page.evaluate(() => document.activeElement.id), "main", "the skip link moves focus to the content");
  // Tab through to the first event link and open it with Enter.
  let found = false;
  for (let i = 0; i < 60 && !found; i++) {
    await page.keyboard.press("Tab");
    found = await page.evaluate(() => document.activeElement.matches("table a"));
  }
  assert.ok(found, "the event links are reachable by Tab");
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "trace.created" }).waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), "page-title", "focus moves to the new page's heading");
  await context.close();
});

test("no serious or critical accessibility violations (axe-core) on the main views", async () => {
  const axe = join(here, "node_modules/axe-core/axe.min.js");
  // bypassCSP lets the test inject axe-core; the console itself allows no injected script.
  const context = await browser.newContext({ bypassCSP: true });
  const page = await signedIn(context, admin);
  const views = ["#/search?project_id=p-2", `#/event/${ids.changed}`, "#/integrity", "#/personal-data", "#/viewer-tokens"];
  const problems = [];
  for (const view of views) {
    await page.evaluate((h) => { location.hash = h; }, view);
    await page.waitForTimeout(400);
    await page.locator("#page-title").waitFor();
    await page.addScriptTag({ path: axe });
    const result = await page.evaluate(async () => window.axe.run(document, { resultTypes: ["violations"] }));
    assert.equal(result.testEngine.name, "axe-core");
    for (const v of result.violations.filter((v) => v.impact === "serious" || v.impact === "critical")) {
      problems.push(`${view}: ${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join("; ")}`);
    }
  }
  assert.deepEqual(problems, []);
  await context.close();
});

test("a development server without tokens (--no-auth): sign in with an organization only", async () => {
  const devData = mkdtempSync(join(tmpdir(), "console-dev-"));
  try {
    const dev = await startServe(devData, ["--no-auth"]);
    const res = await fetch(`${dev}/v1/events`, { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ organization_id: "dev-org", event_type: "user.login", action: "login", actor_type: "user", actor_id: "u-dev" }) });
    assert.equal(res.status, 201);
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${dev}/console`);
    await page.getByLabel("Organization (only for a server without tokens)").fill("dev-org");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Events" }).waitFor();
    await page.locator("table tbody tr", { hasText: "user.login" }).waitFor();
    assert.equal(await page.locator("#who .org").textContent(), "dev-org");
    // The checkpoint key of the named organization comes with whoami: the check runs.
    await page.locator("table tbody tr a", { hasText: "user.login" }).click();
    await page.getByRole("button", { name: "Check this event" }).click();
    await page.locator("[data-verdict]").waitFor();
    assert.equal(await page.locator("[data-verdict]").getAttribute("data-verdict"), "verified", await page.locator("ol.steps").textContent());
    await context.close();
  } finally {
    const child = started.pop();
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
    rmSync(devData, { recursive: true, force: true });
    rmSync(`${devData}-keys`, { recursive: true, force: true });
  }
});

test("a log altered in storage and index fails the check in the browser", async () => {
  // An insider rewrites one event (resource doc-7 → doc-9), recomputes its
  // hash and updates the index to match: the server's own consistency
  // checks pass, but the signed tree does not contain the new hash.
  const dir = join(data, "logs", ORG);
  const segment = readdirSync(dir).filter((f) => f.endsWith(".jsonl")).sort()[0];
  const path = join(dir, segment);
  const lines = readFileSync(path, "utf8").split("\n");
  const at = lines.findIndex((l) => l.includes('"resource_id":"doc-7"'));
  assert.ok(at >= 0);
  const altered = lines[at].replace('"resource_id":"doc-7"', '"resource_id":"doc-9"');
  const body = altered.replace(/,"hash":"[0-9a-f]{64}"/, "");
  const hash = createHash("sha256").update(body).digest("hex");
  lines[at] = altered.replace(/"hash":"[0-9a-f]{64}"/, `"hash":"${hash}"`);
  chmodSync(path, 0o600);
  writeFileSync(path, lines.join("\n"));
  const event = JSON.parse(lines[at]);
  const py = spawnSync("python3", ["-c", `import sqlite3,sys
c = sqlite3.connect(sys.argv[1]); c.execute("UPDATE events SET hash = ? WHERE org = ? AND seq = ?", (bytes.fromhex(sys.argv[2]), sys.argv[3], int(sys.argv[4]))); c.commit()`,
  join(data, "index.sqlite3"), hash, ORG, String(event.sequence)], { encoding: "utf8" });
  assert.equal(py.status, 0, py.stderr);

  const context = await browser.newContext();
  const page = await signedIn(context, admin, `#/event/${event.event_id}`);
  await page.getByRole("button", { name: "Check this event" }).click();
  const verdict = page.locator("[data-verdict]");
  await verdict.waitFor();
  assert.equal(await verdict.getAttribute("data-verdict"), "failed");
  const failed = await page.locator("ol.steps li.bad").textContent();
  assert.match(failed, /signed tree|proof/i, failed);
  // Verify-now on the server agrees, and locates it.
  await page.evaluate(() => { location.hash = "#/integrity"; });
  await page.getByRole("button", { name: "Verify the log now" }).click();
  await page.locator("[data-verdict]").waitFor();
  assert.equal(await page.locator("[data-verdict]").getAttribute("data-verdict"), "invalid");
  // The altered event's hash is self-consistent: the break shows at the next link.
  const rows = await page.locator("table tbody tr").allTextContents();
  assert.ok(rows.some((r) => r.startsWith(`chain_break${event.sequence + 1}`)), rows.join(" | "));
  await context.close();
});

// ------------------------------------------------------------------ main

async function seed() {
  admin = cli("keys", "create", "--org", ORG, "--scopes", "ingest,read,export,verify,admin");
  reader = cli("keys", "create", "--org", ORG, "--scopes", "read");
  base = await startServe();
  const events = [];
  for (let i = 0; i < 121; i++) {
    events.push({ project_id: "p-1", event_type: "trace.viewed", action: "read", actor_type: "user", actor_id: `u-${i % 7}`, resource_type: "trace", resource_id: `doc-${i}` });
  }
  for (let i = 0; i < 5; i++) {
    events.push({ project_id: "p-2", event_type: "trace.created", action: "create", actor_type: "service", actor_id: "ingestor", resource_type: "trace", resource_id: `other-${i}` });
  }
  events.push({ event_type: "user.role_changed", action: "update", actor_type: "user", actor_id: "u-admin", actor_email: "ada@example.com",
    resource_type: "user", resource_id: "u-42", previous_state: { role: "viewer", team: "core" }, new_state: { role: "admin", team: "core", mfa: true },
    request: { method: "PATCH", path: "/users/u-42", status: 200, duration_ms: 12.5, request_id: "req-1" } });
  events.push({ event_type: "user.login", action: "login", actor_type: "user", actor_id: "u-grace", actor_email: "grace@example.com", actor_ip: "203.0.113.9" });
  const receipts = (await post(base, admin, "/v1/events", events)).receipts;
  ids.p2 = receipts[121].event_id;
  ids.changed = receipts[126].event_id;
  ids.grace = receipts[127].event_id;
  // Wait until the index and a checkpoint cover them.
  for (let i = 0; i < 200; i++) {
    const page = await (await get(base, admin, "/v1/events?limit=1&order=desc")).json();
    const cp = await (await get(base, admin, "/v1/checkpoint")).text();
    if (page.indexed_through >= 128 && Number(cp.split("\n")[1]) >= 128) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("the index or the checkpoint did not catch up");
}

const t0 = Date.now();
let passed = 0, failed = 0;
try {
  if (shots) mkdirSync(shots, { recursive: true });
  await seed();
  browser = await chromium.launch({
    executablePath: browserPath,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  for (const t of tests) {
    try {
      await t.fn();
      passed++;
      console.log(`ok      ${t.name}`);
    } catch (e) {
      failed++;
      console.log(`FAILED  ${t.name}\n        ${String(e && e.stack || e).split("\n").join("\n        ")}`);
    }
  }
} catch (e) {
  failed++;
  console.log(`FAILED  setup: ${e && e.stack || e}`);
} finally {
  if (browser) await browser.close();
  for (const child of started) {
    if (child.exitCode === null) {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    }
  }
  rmSync(data, { recursive: true, force: true });
  rmSync(`${data}-keys`, { recursive: true, force: true }); // the personal-data key store beside it
}
console.log(`${passed} passed, ${failed} failed in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
process.exit(failed ? 1 : 0);
