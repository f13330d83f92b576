// The AgentTrace Audit console: one page, plain ES modules, no framework
// and no build step. It only calls the public /v1 API with the token the
// user signs in with (kept in sessionStorage: gone when the tab closes;
// in the embedded form, in memory only). Every value from the log is
// written with textContent, never parsed as HTML.

import { checkEvent } from "./verify.js";

const EMBED = document.documentElement.dataset.mode === "embed";
const TOKEN_KEY = "agenttrace.token";
const ORG_KEY = "agenttrace.org";

const CATEGORIES = ["auth", "data", "config", "admin", "eval", "access"];
const ACTIONS = ["create", "read", "update", "delete", "export", "share", "login", "logout", "execute", "other"];
const SEVERITIES = ["info", "warning", "critical"];
const ACTOR_TYPES = ["user", "api_key", "service", "system", "anonymous"];
const TEXT_FILTERS = [
  ["project_id", "Project"], ["event_type", "Event type"], ["actor_id", "Actor id"], ["actor_email", "Actor e-mail"],
  ["resource_type", "Resource type"], ["resource_id", "Resource id"],
];
const CHOICE_FILTERS = [
  ["event_category", "Category", CATEGORIES], ["action", "Action", ACTIONS],
  ["severity", "Severity", SEVERITIES], ["actor_type", "Actor type", ACTOR_TYPES],
];
const PRESETS = [["", "Any time"], ["1h", "Last hour"], ["24h", "Last 24 hours"], ["7d", "Last 7 days"], ["custom", "Custom range"]];

const session = {
  token: EMBED ? null : sessionStorage.getItem(TOKEN_KEY),
  org: EMBED ? null : sessionStorage.getItem(ORG_KEY),
  me: null,
  routes: null,
};
let tail = null; // the live-tail timer

// ---------------------------------------------------------------- DOM

/** h("a", {href: "#/x", class: "y"}, "text", child…): an element; strings become text nodes. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const main = () => document.getElementById("main");

function show(title, ...content) {
  stopTail();
  const m = main();
  m.replaceChildren(h("h1", { tabindex: "-1", id: "page-title" }, title), ...content.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  document.title = `${title} · AgentTrace Audit`;
  m.querySelector("h1").focus();
}

function say(el, text, kind = "info") {
  el.replaceChildren(text);
  el.className = `notice ${kind}`;
  el.hidden = !text;
}

function status() {
  return h("p", { class: "notice", role: "status", "aria-live": "polite", hidden: true });
}

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, body) {
    const e = body && body.error;
    super(e ? `${e.message}${e.field ? ` (${e.field})` : ""}` : `HTTP ${status}`);
    this.status = status;
    this.code = e && e.code;
  }
}

async function api(path, { method = "GET", body, text = false } = {}) {
  const headers = {};
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
  if (!res.ok) {
    let err = null;
    try { err = await res.json(); } catch { /* not JSON */ }
    if (res.status === 401 && session.me) signOut(err && err.error ? err.error.message : "Your session ended.");
    throw new ApiError(res.status, err);
  }
  return text ? res.text() : res.json();
}

/** Adds the organization for a development server (--no-auth), where tokens name none. */
function withOrg(params) {
  const p = new URLSearchParams(params);
  if (!session.me.organization_id && session.org) p.set("organization_id", session.org);
  return p;
}

const can = (scope) => session.me && (session.me.scopes.includes(scope) || session.me.scopes.includes("admin"));
const offered = (path) => !session.routes || session.routes.has(path);

// ---------------------------------------------------------------- time

function utc(ts) { return ts ? ts.replace("T", " ").replace(/\.\d+Z$/, "Z").replace(/Z$/, " UTC") : ""; }
function local(ts) {
  if (!ts) return "";
  const d = new Date(ts);
  return isNaN(d) ? ts : d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}
function timeCell(ts) { return h("time", { datetime: ts, title: utc(ts) }, local(ts)); }

// ---------------------------------------------------------------- sign-in

function signOut(why) {
  session.token = null; session.me = null; session.org = null;
  sessionStorage.removeItem(TOKEN_KEY); sessionStorage.removeItem(ORG_KEY);
  renderNav();
  if (EMBED) { showEmbedWaiting(why || "This view has ended."); return; }
  location.hash = "#/signin";
  if (why) setTimeout(() => { const s = main().querySelector(".notice"); if (s) say(s, why, "error"); }, 0);
}

async function signIn(token, org) {
  session.token = token || null;
  session.org = org || null;
  const me = await api(session.org ? `/v1/whoami?${new URLSearchParams({ organization_id: session.org })}` : "/v1/whoami");
  session.me = me;
  if (!me.organization_id && !session.org) throw new Error("This server runs without tokens: name the organization to read.");
  try {
    const doc = await fetch("/openapi.json").then((r) => r.json());
    session.routes = new Set(Object.keys(doc.paths || {}));
  } catch { session.routes = null; }
  if (!EMBED) {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    if (org) sessionStorage.setItem(ORG_KEY, org); else sessionStorage.removeItem(ORG_KEY);
  }
  renderNav();
}

function showSignIn() {
  const note = status();
  const token = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", spellcheck: "false", "aria-describedby": "token-help" });
  const org = h("input", { id: "org", name: "org", type: "text", autocomplete: "off" });
  const form = h("form", { class: "card narrow", onsubmit: async (ev) => {
    ev.preventDefault();
    say(note, "Signing in…");
    try {
      await signIn(token.value.trim(), org.value.trim());
      location.hash = "#/search";
    } catch (e) {
      session.token = null; session.me = null;
      say(note, `Cannot sign in: ${e.message}`, "error");
    }
  } },
  h("label", { for: "token" }, "API token"), token,
  h("p", { id: "token-help", class: "help" }, "A token made with ", h("code", {}, "agenttrace-audit keys create"), ". It stays in this tab only and is never put in a URL."),
  h("label", { for: "org" }, "Organization (only for a server without tokens)"), org,
  h("button", { type: "submit", class: "primary" }, "Sign in"), note);
  show("Sign in", form);
}

// ---------------------------------------------------------------- nav

function renderNav() {
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  nav.replaceChildren(); who.replaceChildren();
  if (!session.me) return;
  const link = (href, label) => h("a", { href }, label);
  nav.append(link("#/search", "Events"));
  if (!EMBED) {
    nav.append(link("#/integrity", "Integrity"));
    if (can("admin") && offered("/v1/legal-holds")) nav.append(link("#/personal-data", "Personal data"));
    if (can("admin") && offered("/v1/viewer-tokens")) nav.append(link("#/viewer-tokens", "Viewer tokens"));
  }
  const org = session.me.organization_id || session.org;
  who.append(h("span", { class: "org", title: "Organization" }, org));
  if (session.me.viewer) who.append(h("span", { class: "badge" }, "read-only view"));
  if (!EMBED) who.append(h("button", { type: "button", class: "link", onclick: () => signOut() }, "Sign out"));
}

// ---------------------------------------------------------------- search

function routeParams() {
  const q = location.hash.indexOf("?");
  return new URLSearchParams(q < 0 ? "" : location.hash.slice(q + 1));
}

/** The API parameters of the search in the URL (presets become a start time). */
function apiParams(url) {
  const p = new URLSearchParams();
  for (const [k] of [...TEXT_FILTERS, ...CHOICE_FILTERS]) if (url.get(k)) p.set(k, url.get(k));
  const preset = url.get("preset") || "";
  if (preset === "custom") {
    if (url.get("start")) p.set("start_time", new Date(url.get("start")).toISOString());
    if (url.get("end")) p.set("end_time", new Date(url.get("end")).toISOString());
  } else if (preset) {
    // Fixed when the first page was asked for, so later pages of the same
    // search see the same window (the URL keeps the preset's name).
    p.set("start_time", url.get("since") || preset);
  }
  p.set("order", url.get("order") === "asc" ? "asc" : "desc");
  p.set("limit", url.get("limit") || "50");
  if (url.get("cursor")) p.set("cursor", url.get("cursor"));
  return p;
}

function showSearch() {
  const url = routeParams();
  const pinned = (session.me.viewer && session.me.viewer.filter) || {};
  const field = (name, label, control) => h("div", { class: "field" }, h("label", { for: `f-${name}` }, label), control);
  const textInput = (name) => h("input", { id: `f-${name}`, name, type: name === "actor_email" ? "email" : "text",
    value: pinned[name] || url.get(name) || "", disabled: name in pinned, autocomplete: "off" });
  const select = (name, choices, current) => h("select", { id: `f-${name}`, name, disabled: name in pinned },
    h("option", { value: "" }, "Any"), choices.map((c) => h("option", { value: c, selected: c === (pinned[name] || current) }, c)));
  const preset = url.get("preset") || "";
  const start = h("input", { id: "f-start", name: "start", type: "datetime-local", value: url.get("start") || "" });
  const end = h("input", { id: "f-end", name: "end", type: "datetime-local", value: url.get("end") || "" });
  const custom = h("div", { class: "custom-range", hidden: preset !== "custom" }, field("start", "From (your time)", start), field("end", "Until (your time)", end));
  const presetSelect = h("select", { id: "f-preset", name: "preset", onchange: (e) => { custom.hidden = e.target.value !== "custom"; } },
    PRESETS.map(([v, l]) => h("option", { value: v, selected: v === preset }, l)));
  const newest = h("input", { id: "f-newest", name: "newest", type: "checkbox", checked: url.get("order") !== "asc" });
  const live = h("input", { id: "f-live", name: "live", type: "checkbox", checked: url.get("live") === "1" });
  const limit = h("select", { id: "f-limit", name: "limit" }, ["25", "50", "100", "200"].map((n) => h("option", { value: n, selected: n === (url.get("limit") || "50") }, n)));

  const form = h("form", { class: "filters card", role: "search", onsubmit: (ev) => {
    ev.preventDefault();
    const next = new URLSearchParams();
    for (const [k] of TEXT_FILTERS) { const v = form.elements[k].value.trim(); if (v && !(k in pinned)) next.set(k, v); }
    for (const [k] of CHOICE_FILTERS) { const v = form.elements[k].value; if (v && !(k in pinned)) next.set(k, v); }
    const pr = presetSelect.value;
    if (pr) next.set("preset", pr);
    if (pr === "custom") { if (start.value) next.set("start", start.value); if (end.value) next.set("end", end.value); }
    else if (pr) next.set("since", new Date(Date.now() - { "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3 }[pr]).toISOString());
    if (!newest.checked) next.set("order", "asc");
    if (limit.value !== "50") next.set("limit", limit.value);
    if (live.checked) next.set("live", "1");
    location.hash = `#/search?${next}`;
  } },
  h("div", { class: "grid" },
    TEXT_FILTERS.map(([k, l]) => field(k, l, textInput(k))),
    CHOICE_FILTERS.map(([k, l, c]) => field(k, l, select(k, c, url.get(k)))),
    field("preset", "Time", presetSelect), field("limit", "Per page", limit)),
  custom,
  h("div", { class: "row" },
    h("label", { class: "check" }, newest, " Newest first"),
    h("label", { class: "check" }, live, " Live tail (every 5 s)"),
    h("button", { type: "submit", class: "primary" }, "Search"),
    h("a", { href: "#/search", class: "button" }, "Clear")));

  const note = status();
  const results = h("div", { class: "results" });
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  const exportBar = can("export") ? exportControls(url) : null;
  show("Events", Object.keys(pinned).length ? h("p", { class: "notice info" }, "This view shows only events with ",
    Object.entries(pinned).map(([k, v]) => `${k} = ${v}`).join(", "), ".") : null, form, exportBar, note, results, pager);
  runSearch(url, note, results, pager);
}

async function runSearch(url, note, results, pager) {
  const params = withOrg(apiParams(url));
  let page;
  try {
    page = await api(`/v1/events?${params}`);
  } catch (e) {
    say(note, `The search failed: ${e.message}`, "error");
    return;
  }
  renderResults(page, url, results, note);
  pager.replaceChildren();
  if (url.get("cursor")) pager.append(h("button", { type: "button", onclick: () => history.back() }, "← Previous page"));
  if (page.next_cursor) {
    const next = new URLSearchParams(url);
    next.set("cursor", page.next_cursor);
    pager.append(h("a", { href: `#/search?${next}`, class: "button", rel: "next" }, "Next page →"));
  }
  if (url.get("live") === "1" && !url.get("cursor")) {
    let newest = Math.max(-1, ...page.events.map((e) => e.sequence));
    tail = setInterval(async () => {
      try {
        const fresh = await api(`/v1/events?${params}`);
        const top = Math.max(-1, ...fresh.events.map((e) => e.sequence));
        if (top !== newest) { renderResults(fresh, url, results, note, newest); newest = top; }
      } catch { /* the next tick tries again */ }
    }, 5000);
  }
}

function stopTail() { if (tail) { clearInterval(tail); tail = null; } }

function renderResults(page, url, results, note, seenThrough) {
  const events = page.events;
  say(note, events.length
    ? `${events.length} event${events.length === 1 ? "" : "s"} on this page.` + (url.get("live") === "1" ? " Live: new events appear as they are indexed." : "")
    : "No events match.");
  const actor = (e) => e.actor_email || e.actor_id || e.actor_type;
  const rows = events.map((e) => h("tr", { class: seenThrough !== undefined && e.sequence > seenThrough ? "new" : null },
    h("td", {}, timeCell(e.timestamp)),
    h("td", {}, h("a", { href: `#/event/${encodeURIComponent(e.event_id)}` }, e.event_type)),
    h("td", {}, e.action),
    h("td", {}, actor(e)),
    h("td", {}, [e.resource_type, e.resource_id].filter(Boolean).join(" ")),
    h("td", {}, h("span", { class: `sev ${e.severity}` }, e.severity)),
    h("td", {}, e.project_id || ""),
    h("td", { class: "num" }, e.sequence)));
  results.replaceChildren(events.length ? h("div", { class: "table-wrap" }, h("table", {},
    h("caption", { class: "visually-hidden" }, "Matching events"),
    h("thead", {}, h("tr", {}, ["Time", "Event", "Action", "Actor", "Resource", "Severity", "Project", "Seq."].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows))) : "");
}

function exportControls(url) {
  const note = status();
  const format = h("select", { id: "x-format", name: "format" },
    h("option", { value: "csv" }, "CSV"), h("option", { value: "json" }, "JSON"), h("option", { value: "jsonl" }, "JSON Lines (verifiable)"),
    h("option", { value: "evidence" }, "Evidence bundle (JSON Lines with proofs)"));
  const go = async () => {
    const p = withOrg(apiParams(url));
    for (const k of ["cursor", "limit", "order"]) p.delete(k);
    const f = format.value;
    p.set("format", f === "evidence" ? "jsonl" : f);
    if (f === "evidence") p.set("with_proof", "true");
    say(note, "Preparing the download…");
    try {
      const link = await api("/v1/export-links", { method: "POST", body: { params: Object.fromEntries(p) } });
      const a = h("a", { href: link.url, download: "" });
      document.body.append(a); a.click(); a.remove();
      say(note, "The download has started; it streams every matching event.");
    } catch (e) { say(note, `The export failed: ${e.message}`, "error"); }
  };
  return h("div", { class: "export row card" }, h("label", { for: "x-format" }, "Export this search as"), format,
    h("button", { type: "button", onclick: go }, "Download"), note);
}

// ---------------------------------------------------------------- event

const SUMMARY = ["event_id", "sequence", "timestamp", "occurred_at", "organization_id", "project_id", "event_category", "event_type",
  "action", "severity", "actor_type", "actor_id", "actor_email", "actor_ip", "user_agent", "session_id", "resource_type", "resource_id",
  "idempotency_key", "producer_id", "producer_sequence", "schema_version"];

function definitionList(entries) {
  return h("dl", { class: "members" }, entries.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function valueText(v) { return typeof v === "string" ? v : JSON.stringify(v, null, 2); }

/** previous_state → new_state, member by member (nested objects by dotted path). */
export function diff(before = {}, after = {}) {
  const flat = (o, prefix = "", out = {}) => {
    for (const [k, v] of Object.entries(o || {})) {
      if (v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length) flat(v, `${prefix}${k}.`, out);
      else out[`${prefix}${k}`] = v;
    }
    return out;
  };
  const a = flat(before), b = flat(after);
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return keys.map((k) => {
    const was = k in a, is = k in b;
    const change = !was ? "added" : !is ? "removed" : JSON.stringify(a[k]) === JSON.stringify(b[k]) ? "same" : "changed";
    return { path: k, before: a[k], after: b[k], change };
  });
}

async function showEvent(id) {
  let e;
  try {
    e = await api(`/v1/events/${encodeURIComponent(id)}?${withOrg({})}`);
  } catch (err) {
    show("Event", h("p", { class: "notice error" }, `Cannot show this event: ${err.message}`), h("a", { href: "#/search" }, "Back to events"));
    return;
  }
  const times = h("p", { class: "times" }, "Recorded ", timeCell(e.timestamp), h("span", { class: "utc" }, ` (${utc(e.timestamp)})`),
    e.occurred_at ? [" · occurred ", timeCell(e.occurred_at), h("span", { class: "utc" }, ` (${utc(e.occurred_at)})`)] : null);
  const summary = h("section", { class: "card", "aria-labelledby": "s-summary" }, h("h2", { id: "s-summary" }, "Summary"),
    definitionList(SUMMARY.filter((k) => k in e).map((k) => [k, k === "timestamp" || k === "occurred_at" ? [timeCell(e[k]), ` — ${utc(e[k])}`] : valueText(e[k])])));
  let changes = null;
  if (e.previous_state || e.new_state) {
    const rows = diff(e.previous_state, e.new_state);
    changes = h("section", { class: "card", "aria-labelledby": "s-changes" }, h("h2", { id: "s-changes" }, "Changes"),
      h("div", { class: "table-wrap" }, h("table", { class: "diff" },
        h("thead", {}, h("tr", {}, ["Member", "Before", "After", ""].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, rows.map((r) => h("tr", { class: r.change },
          h("td", {}, h("code", {}, r.path)),
          h("td", {}, r.before === undefined ? "—" : valueText(r.before)),
          h("td", {}, r.after === undefined ? "—" : valueText(r.after)),
          h("td", {}, r.change === "same" ? "" : r.change)))))));
  }
  const request = e.request ? h("section", { class: "card", "aria-labelledby": "s-request" }, h("h2", { id: "s-request" }, "Request"),
    definitionList(Object.entries(e.request).map(([k, v]) => [k, valueText(v)]))) : null;
  const metadata = e.metadata ? h("section", { class: "card", "aria-labelledby": "s-meta" }, h("h2", { id: "s-meta" }, "Metadata"),
    h("pre", {}, JSON.stringify(e.metadata, null, 2))) : null;
  const raw = h("details", { class: "card" }, h("summary", {}, "Every member (JSON)"), h("pre", {}, JSON.stringify(e, null, 2)));
  show(e.event_type, h("p", {}, h("a", { href: "#/search", onclick: (ev) => { if (history.length > 1) { ev.preventDefault(); history.back(); } } }, "← Back to events")),
    times, summary, changes, request, metadata, integrityPanel(e), raw);
}

function integrityPanel(e) {
  const result = h("div", { class: "check-result", "aria-live": "polite" });
  const button = h("button", { type: "button", class: "primary", onclick: async () => {
    button.disabled = true;
    result.replaceChildren(h("p", {}, "Checking in this browser…"));
    const steps = await checkInBrowser(e);
    const ok = steps.length > 0 && steps.every((s) => s.ok);
    result.replaceChildren(
      h("p", { class: `verdict ${ok ? "ok" : "bad"}`, "data-verdict": ok ? "verified" : "failed" },
        ok ? "✔ Verified: this event is in the signed log, unaltered." : "✘ Not verified: see the failed step."),
      h("ol", { class: "steps" }, steps.map((s) => h("li", { class: s.ok ? "ok" : "bad" },
        h("strong", {}, `${s.ok ? "✔" : "✘"} ${s.name}`), h("br"), h("span", { class: "detail" }, s.detail)))));
    button.disabled = false;
  } }, "Check this event");
  return h("section", { class: "card integrity", "aria-labelledby": "s-integrity" }, h("h2", { id: "s-integrity" }, "Integrity"),
    definitionList([["sequence", String(e.sequence)], ["hash", h("code", {}, e.hash)], ["previous_hash", h("code", {}, e.previous_hash)]]),
    h("p", { class: "help" }, "The check recomputes the event's hash, checks the checkpoint's Ed25519 signature and the Merkle inclusion proof here, with your browser's Web Crypto — not on the server."),
    button, result);
}

async function checkInBrowser(e) {
  const org = withOrg({});
  try {
    const stored = await api(`/v1/events/${encodeURIComponent(e.event_id)}?${new URLSearchParams({ ...Object.fromEntries(org), form: "stored" })}`);
    const checkpointNote = await api(`/v1/checkpoint?${org}`, { text: true });
    const size = Number(checkpointNote.split("\n")[1]);
    if (!(stored.sequence < size)) {
      return [{ name: "The event is in a signed checkpoint", ok: false, detail: `the newest checkpoint covers ${size} events; this one (sequence ${stored.sequence}) is newer — try again in a second` }];
    }
    const proof = await api(`/v1/events/${encodeURIComponent(e.event_id)}/proof?${new URLSearchParams({ ...Object.fromEntries(org), tree_size: String(size) })}`);
    const verifierKey = localStorage.getItem(`agenttrace.trusted-key.${session.me.organization_id || session.org}`) || session.me.checkpoint_key;
    if (!verifierKey) return [{ name: "A checkpoint key is known", ok: false, detail: "the server gave no checkpoint key for this organization; paste the one you trust on the Integrity page" }];
    return await checkEvent({ stored, shownHash: e.hash, checkpointNote, verifierKey, proof });
  } catch (err) {
    return [{ name: "The evidence could be fetched", ok: false, detail: err.message }];
  }
}

// ---------------------------------------------------------------- integrity

async function showIntegrity() {
  const org = withOrg({});
  const orgName = session.me.organization_id || session.org;
  const cp = h("section", { class: "card", "aria-labelledby": "s-cp" }, h("h2", { id: "s-cp" }, "Newest checkpoint"));
  const sched = h("section", { class: "card", "aria-labelledby": "s-sched" }, h("h2", { id: "s-sched" }, "Scheduled verification"));
  const now = h("section", { class: "card", "aria-labelledby": "s-now" }, h("h2", { id: "s-now" }, "Verify now"));
  const keyField = h("input", { id: "trusted-key", type: "text", spellcheck: "false", autocomplete: "off",
    value: localStorage.getItem(`agenttrace.trusted-key.${orgName}`) || "" });
  const keyNote = status();
  const trust = h("section", { class: "card", "aria-labelledby": "s-key" }, h("h2", { id: "s-key" }, "Checkpoint key"),
    h("p", {}, "The server says this organization's checkpoints are signed with:"),
    h("pre", { class: "wrap" }, session.me.checkpoint_key || "(none: this server writes no checkpoints)"),
    h("form", { onsubmit: (ev) => {
      ev.preventDefault();
      const v = keyField.value.trim();
      if (v) localStorage.setItem(`agenttrace.trusted-key.${orgName}`, v); else localStorage.removeItem(`agenttrace.trusted-key.${orgName}`);
      say(keyNote, v ? "Event checks now use this key, whatever the server says." : "Event checks use the server's key.");
    } }, h("label", { for: "trusted-key" }, "Key you trust (from your own records; optional)"), keyField,
    h("button", { type: "submit" }, "Save"), keyNote));
  show("Integrity", cp, sched, can("verify") ? now : null, trust);

  try {
    const note = await api(`/v1/checkpoint?${org}`, { text: true });
    const lines = note.split("\n");
    const sigs = note.slice(note.indexOf("\n\n") + 2).trim().split("\n");
    cp.append(definitionList([["origin", lines[0]], ["tree size", lines[1]], ["root hash (base64)", h("code", {}, lines[2])],
      ["signatures", String(sigs.length)]]),
    h("details", {}, h("summary", {}, "The signed note, with any witness cosignatures"), h("pre", { class: "wrap" }, note)));
  } catch (e) { cp.append(h("p", { class: "notice info" }, `No checkpoint: ${e.message}`)); }

  if (can("verify")) {
    try {
      const s = await api(`/v1/integrity/status?${org}`);
      const run = s.last_run;
      sched.append(definitionList([["schedule", s.schedule || "off"], ["full runs", s.full_schedule || "off"],
        ["last run", run ? `${run.valid ? "valid" : "INVALID"} — ${local(run.finished_at || run.started_at)} (${run.mode || "full"})` : "none yet"]]));
      if (s.witnesses.length) {
        sched.append(h("h3", {}, "Witnesses"), h("ul", {}, s.witnesses.map((w) => h("li", {}, `${w.name}: cosigned size ${w.cosigned_size ?? "none yet"}`,
          w.fork ? h("strong", { class: "bad" }, ` — FORK: ${w.fork}`) : "", w.last_error ? ` — last error: ${w.last_error}` : ""))));
      }
    } catch (e) { sched.append(h("p", { class: "notice error" }, e.message)); }
    const out = h("div", { "aria-live": "polite" });
    const button = h("button", { type: "button", class: "primary", onclick: async () => {
      button.disabled = true;
      out.replaceChildren(h("p", {}, "Verifying the whole log on the server…"));
      try { out.replaceChildren(report(await api(`/v1/integrity?${org}`))); } catch (e) { out.replaceChildren(h("p", { class: "notice error" }, e.message)); }
      button.disabled = false;
    } }, "Verify the log now");
    now.append(h("p", { class: "help" }, "Recomputes every hash and link and checks the Merkle root against the signed checkpoint."), button, out);
  } else {
    sched.append(h("p", { class: "help" }, "Your token has no verify scope."));
  }
}

function report(r) {
  const verdict = h("p", { class: `verdict ${r.valid ? "ok" : "bad"}`, "data-verdict": r.valid ? "valid" : "invalid" },
    r.valid ? `✔ Valid: ${r.total_events} events checked.` : `✘ Invalid: ${r.errors.length} error${r.errors.length === 1 ? "" : "s"} in ${r.total_events} events.`);
  const errors = r.errors.length ? h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, ["Error", "Sequence", "Event", "Detail"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, r.errors.map((e) => h("tr", {}, h("td", {}, h("code", {}, e.error)), h("td", { class: "num" }, e.sequence ?? ""),
      h("td", {}, e.event_id ? h("a", { href: `#/event/${encodeURIComponent(e.event_id)}` }, e.event_id) : ""), h("td", {}, e.detail || "")))))) : null;
  const complete = r.complete === false ? h("p", { class: "notice error" }, `Incomplete: ${JSON.stringify(r.producer_gaps)}`) : null;
  return h("div", {}, verdict, complete, errors);
}

// ---------------------------------------------------------------- personal data

async function showPersonalData() {
  const org = session.me.organization_id || session.org;
  const body = (extra) => (session.me.organization_id ? extra : { organization_id: org, ...extra });
  const eraseNote = status();
  const kind = h("select", { id: "e-kind" }, h("option", { value: "email" }, "E-mail address"), h("option", { value: "actor_id" }, "Actor id"),
    h("option", { value: "unattributed_before" }, "Unattributed data before (RFC 3339)"));
  const subject = h("input", { id: "e-subject", type: "text", autocomplete: "off", required: true });
  const sure = h("input", { id: "e-sure", type: "checkbox", required: true });
  const erase = h("form", { class: "card", "aria-labelledby": "s-erase", onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      const r = await api("/v1/subjects/erase", { method: "POST", body: body({ [kind.value]: subject.value.trim() }) });
      say(eraseNote, r.already_erased ? "Already erased: nothing was left to destroy." : `Erased: ${r.keys_destroyed} key(s) destroyed; ${r.affected_events} stored events now read "[erased]".`, "ok");
      sure.checked = false;
    } catch (e) { say(eraseNote, e.code === "legal_hold" ? `Refused: ${e.message}` : `The erasure failed: ${e.message}`, "error"); }
  } }, h("h2", { id: "s-erase" }, "Erase a data subject"),
  h("p", { class: "help" }, "Destroys the subject's key: their personal values in every event become unreadable, while the log and its proofs stay intact. This cannot be undone."),
  h("label", { for: "e-kind" }, "Subject by"), kind, h("label", { for: "e-subject" }, "Subject"), subject,
  h("label", { class: "check" }, sure, " I understand the erasure cannot be undone"), h("button", { type: "submit", class: "danger" }, "Erase"), eraseNote);

  const holdsList = h("div", {});
  const holdNote = status();
  const holdSubject = h("input", { id: "h-email", type: "email", autocomplete: "off" });
  const reason = h("input", { id: "h-reason", type: "text", required: true, autocomplete: "off" });
  const loadHolds = async () => {
    try {
      const { holds } = await api(`/v1/legal-holds?${withOrg({})}`);
      holdsList.replaceChildren(holds.length ? h("ul", { class: "holds" }, holds.map((x) => h("li", {},
        h("strong", {}, x.scope === "organization" ? "Whole organization" : `Subject ${x.subject_token.slice(0, 12)}…`), ` — ${x.reason} (placed ${local(x.placed_at)}) `,
        h("button", { type: "button", onclick: async () => {
          try { await api(`/v1/legal-holds/${encodeURIComponent(x.id)}?${withOrg({})}`, { method: "DELETE" }); say(holdNote, "Hold lifted.", "ok"); loadHolds(); } catch (e) { say(holdNote, e.message, "error"); }
        } }, "Lift")))) : h("p", {}, "No legal holds."));
    } catch (e) { holdsList.replaceChildren(h("p", { class: "notice error" }, e.message)); }
  };
  const holds = h("section", { class: "card", "aria-labelledby": "s-holds" }, h("h2", { id: "s-holds" }, "Legal holds"), holdsList,
    h("form", { onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const extra = { reason: reason.value.trim() };
        if (holdSubject.value.trim()) extra.email = holdSubject.value.trim();
        await api("/v1/legal-holds", { method: "POST", body: body(extra) });
        say(holdNote, "Hold placed.", "ok"); reason.value = ""; holdSubject.value = ""; loadHolds();
      } catch (e) { say(holdNote, e.message, "error"); }
    } }, h("h3", {}, "Place a hold"), h("label", { for: "h-email" }, "Subject's e-mail (empty: the whole organization)"), holdSubject,
    h("label", { for: "h-reason" }, "Reason"), reason, h("button", { type: "submit" }, "Place hold"), holdNote));
  show("Personal data", erase, holds);
  loadHolds();
}

// ---------------------------------------------------------------- viewer tokens

function showViewerTokens() {
  const note = status();
  const out = h("div", {});
  const ttl = h("input", { id: "v-ttl", type: "number", min: "1", max: "86400", value: "900" });
  const project = h("input", { id: "v-project", type: "text", autocomplete: "off" });
  const origins = h("input", { id: "v-origins", type: "text", autocomplete: "off", placeholder: "https://app.example.com" });
  const exp = h("input", { id: "v-export", type: "checkbox" });
  const form = h("form", { class: "card", onsubmit: async (ev) => {
    ev.preventDefault();
    const ask = { ttl_seconds: Number(ttl.value), export: exp.checked,
      frame_ancestors: origins.value.split(/[\s,]+/).filter(Boolean) };
    if (project.value.trim()) ask.filter = { project_id: project.value.trim() };
    if (!session.me.organization_id) ask.organization_id = session.org;
    try {
      const m = await api("/v1/viewer-tokens", { method: "POST", body: ask });
      say(note, `Token ${m.id} made; it works until ${local(m.expires_at)}.`, "ok");
      out.replaceChildren(definitionList([["token (shown once)", h("code", { class: "wrap", id: "v-token" }, m.token)],
        ["embed path", h("code", { id: "v-embed" }, m.embed_path)]]),
      h("p", { class: "help" }, "Load the embed path in an iframe of an allowed origin, then hand the token to it with postMessage({agenttrace_token: token}) — or put it in the fragment: ", h("code", {}, "#token=…"), "."));
    } catch (e) { say(note, e.message, "error"); }
  } }, h("p", { class: "help" }, "A viewer token reads one organization's log, read-only, for a short time — for showing a customer its own audit log inside your product."),
  h("label", { for: "v-ttl" }, "Lifetime (seconds)"), ttl, h("label", { for: "v-project" }, "Only this project (optional)"), project,
  h("label", { for: "v-origins" }, "Origins that may embed it (space-separated)"), origins,
  h("label", { class: "check" }, exp, " May export"), h("button", { type: "submit", class: "primary" }, "Make a viewer token"), note);
  show("Viewer tokens", form, out);
}

// ---------------------------------------------------------------- embed

function showEmbedWaiting(text) {
  main().replaceChildren(h("p", { class: "notice info", role: "status" }, text || "Waiting for the application to open this view…"));
}

async function startEmbed() {
  // The token arrives in the fragment (never sent to a server) or by
  // postMessage from the framing page; it is kept in memory only.
  const m = /^#token=([^&]+)/.exec(location.hash);
  if (m) {
    history.replaceState(null, "", location.pathname + "#/search");
    await openEmbed(decodeURIComponent(m[1]));
    return;
  }
  showEmbedWaiting();
  window.addEventListener("message", async (ev) => {
    if (session.me || ev.source !== window.parent || !ev.data || typeof ev.data.agenttrace_token !== "string") return;
    await openEmbed(ev.data.agenttrace_token);
  });
  if (window.parent !== window) window.parent.postMessage({ agenttrace_ready: true }, "*");
}

async function openEmbed(token) {
  try {
    await signIn(token, null);
    if (!location.hash.startsWith("#/")) history.replaceState(null, "", location.pathname + "#/search");
    route();
  } catch (e) {
    showEmbedWaiting(`This view cannot open: ${e.message}`);
  }
}

// ---------------------------------------------------------------- router

async function route() {
  const hash = location.hash || "#/search";
  if (!session.me) {
    if (EMBED) return;
    if (session.token || session.org) {
      try { await signIn(session.token, session.org); } catch { signOut(); return; }
    } else { showSignIn(); return; }
  }
  const [path] = hash.slice(1).split("?");
  const parts = path.split("/").filter(Boolean);
  if (parts[0] === "event" && parts[1]) return showEvent(decodeURIComponent(parts[1]));
  if (!EMBED && parts[0] === "integrity") return showIntegrity();
  if (!EMBED && parts[0] === "personal-data" && can("admin")) return showPersonalData();
  if (!EMBED && parts[0] === "viewer-tokens" && can("admin")) return showViewerTokens();
  if (parts[0] === "signin" && !EMBED) { signOut(); return showSignIn(); }
  return showSearch();
}

// The skip link moves focus without touching the hash (the hash is the route).
document.querySelector("a.skip").addEventListener("click", (ev) => { ev.preventDefault(); main().focus(); });
window.addEventListener("hashchange", route);
if (EMBED) startEmbed(); else route();
