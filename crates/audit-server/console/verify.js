// In-browser checks of one event against the signed checkpoint, with the
// platform's own Web Crypto (SHA-256, Ed25519) and nothing else:
//
//   1. the event's hash: SHA-256 of the RFC 8785 canonical JSON of the
//      stored event without its `hash` member (docs/FORMAT.md);
//   2. the checkpoint: a C2SP signed note whose Ed25519 signature, under
//      the organization's checkpoint key, covers origin, size and root;
//   3. the inclusion proof (RFC 9162 §2.1.3.2): leaf SHA-256(0x00 ‖ hash)
//      and the audit path recompute the checkpoint's root.

const encoder = new TextEncoder();

/** RFC 8785 (JCS). JSON.stringify already writes strings and numbers the
 *  way JCS requires (JCS is defined by ECMAScript's serialisation); keys
 *  sort by UTF-16 code units, which is what Array.prototype.sort does. */
export function canonicalize(value) {
  if (value === null || typeof value !== "object") {
    if (typeof value === "number" && !Number.isFinite(value)) throw new Error("not I-JSON: a non-finite number");
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return "[" + value.map(canonicalize).join(",") + "]";
  return "{" + Object.keys(value).sort().map((k) => JSON.stringify(k) + ":" + canonicalize(value[k])).join(",") + "}";
}

export function hexToBytes(hex) {
  if (!/^([0-9a-f]{2})*$/.test(hex)) throw new Error(`not lowercase hex: ${hex.slice(0, 16)}…`);
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function bytesToHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function base64ToBytes(text) {
  const bin = atob(text);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

/** The hash an event's content gives, hex. */
export async function eventHash(storedEvent) {
  const { hash: _ignored, ...rest } = storedEvent;
  return bytesToHex(await sha256(encoder.encode(canonicalize(rest))));
}

/** RFC 9162 leaf and node hashes. */
export async function leafHash(eventHashHex) {
  return sha256(concat(Uint8Array.of(0), hexToBytes(eventHashHex)));
}
async function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(1), left, right));
}

function equal(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** RFC 9162 §2.1.3.2: does `path` lead from leaf `index` of a tree of
 *  `size` leaves to `root`? (Numbers, not 32-bit bit operations: sizes go
 *  past 2^32.) */
export async function verifyInclusion(index, size, leaf, path, root) {
  if (!(index < size)) return false;
  let fn = index, sn = size - 1, r = leaf;
  for (const p of path) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(p, r);
      while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    } else {
      r = await nodeHash(r, p);
    }
    fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
  }
  return sn === 0 && equal(r, root);
}

/** A C2SP verifier key `<name>+<hex key id>+<base64(0x01 ‖ public key)>`. */
export async function parseVerifierKey(vkey) {
  // name+keyid+key, where the base64 key may itself contain "+".
  const m = /^([^+\s]+)\+([0-9a-f]{8})\+(\S+)$/.exec(vkey.trim());
  if (!m) throw new Error("a verifier key is name+keyid+key");
  const [, name, idHex, keyB64] = m;
  const raw = base64ToBytes(keyB64);
  if (raw.length !== 33 || raw[0] !== 1) throw new Error("not an Ed25519 verifier key");
  const id = (await sha256(concat(encoder.encode(name + "\n"), raw))).slice(0, 4);
  if (bytesToHex(id) !== idHex) throw new Error("the key id does not match the key");
  const key = await crypto.subtle.importKey("raw", raw.slice(1), { name: "Ed25519" }, false, ["verify"]);
  return { name, id, key };
}

/** Opens a signed note with `verifier`: the text, or an error saying why not. */
export async function openNote(note, verifier) {
  const split = note.lastIndexOf("\n\n");
  if (split < 0 || !note.endsWith("\n")) throw new Error("not a signed note");
  const text = note.slice(0, split + 1);
  for (const line of note.slice(split + 2, -1).split("\n")) {
    const m = /^\u2014 (\S+) (\S+)$/.exec(line);
    if (!m) throw new Error(`malformed signature line: ${line.slice(0, 40)}`);
    if (m[1] !== verifier.name) continue;
    const sig = base64ToBytes(m[2]);
    if (sig.length !== 68 || !equal(sig.slice(0, 4), verifier.id)) continue;
    const ok = await crypto.subtle.verify({ name: "Ed25519" }, verifier.key, sig.slice(4), encoder.encode(text));
    if (ok) return text;
    throw new Error(`the signature of ${verifier.name} does not verify`);
  }
  throw new Error(`no signature by ${verifier.name}`);
}

/** Origin, size and root of a checkpoint's text (C2SP tlog-checkpoint). */
export function parseCheckpoint(text) {
  const lines = text.split("\n");
  if (lines.length < 4 || !/^(0|[1-9][0-9]*)$/.test(lines[1])) throw new Error("not a checkpoint");
  const root = base64ToBytes(lines[2]);
  if (root.length !== 32) throw new Error("the checkpoint's root is not 32 bytes");
  return { origin: lines[0], size: Number(lines[1]), root };
}

/** Checks one stored event against a signed checkpoint and an inclusion
 *  proof. Returns the steps, each {name, ok, detail}; stops at the first
 *  failure (later steps would mean nothing). */
export async function checkEvent({ stored, shownHash, checkpointNote, verifierKey, proof }) {
  const steps = [];
  const step = (name, ok, detail) => { steps.push({ name, ok, detail }); return ok; };
  try {
    const computed = await eventHash(stored);
    if (!step("The event's content gives its hash", computed === stored.hash,
      computed === stored.hash ? `SHA-256 of its canonical JSON is ${computed}` : `its content hashes to ${computed}, but it says ${stored.hash}`)) return steps;
    if (shownHash !== undefined && !step("The event shown is the event stored", shownHash === stored.hash,
      `shown ${shownHash}, stored ${stored.hash}`)) return steps;
    const verifier = await parseVerifierKey(verifierKey);
    let text;
    try { text = await openNote(checkpointNote, verifier); } catch (e) { step("The checkpoint is signed", false, String(e.message || e)); return steps; }
    const cp = parseCheckpoint(text);
    step("The checkpoint is signed", true, `by ${verifier.name}: ${cp.size} events, root ${bytesToHex(cp.root)}`);
    if (!step("The proof is for this checkpoint", proof.tree_size === cp.size && proof.leaf_index === stored.sequence,
      `proof for leaf ${proof.leaf_index} of a tree of ${proof.tree_size}; event sequence ${stored.sequence}, checkpoint size ${cp.size}`)) return steps;
    const leaf = await leafHash(stored.hash);
    const path = proof.proof.map(hexToBytes);
    const ok = await verifyInclusion(stored.sequence, cp.size, leaf, path, cp.root);
    step("The event is in the signed tree", ok, ok
      ? `${path.length} proof hashes lead from the event to the signed root`
      : "the proof does not lead from this event's hash to the signed root: the log was altered, or the proof is wrong");
  } catch (e) {
    step("The check could run", false, String(e.message || e));
  }
  return steps;
}
