/**
 * "Claims in docs are measured claims", for the names an operator greps for: the gateway's
 * Prometheus metrics and the reasons it counts drops and events by.
 *
 * Read from the code (never a list kept here):
 * - metrics: every `gateway_*` name registered in gateway/src/ops/metrics.ts;
 * - device-side drops and session closes: the DropReason and CloseReason unions there
 *   (`gateway_dropped_total{reason}`, `gateway_sessions_closed_total{reason}`);
 * - agent-side events (`gateway_agent_events_total{event}`): the first argument of every
 *   `.drop(...)`, `#drop(...)`, `#refuse(...)` call, every `drop:` field given a name and
 *   every `agentEvents.inc({ event })` in gateway/src; a name built at run time is listed
 *   in DYNAMIC with the code its parts come from, a name passed on from elsewhere in
 *   PASSED_ON with where it was read; any other form fails the test, so a new one is
 *   handled here before its names can go undocumented;
 * - the media process's own counts: every `.Count("...")` in media/ (not tests), which
 *   the gateway counts as `media_<name>` (transports.ts, childCounts);
 * - the device verifier's reasons (its `/stats`): the AllowReason, DenyReason and
 *   VerifierRefusal unions of gateway/src/auth/verifier-server.ts, with CredentialRejection
 *   of device-credentials.ts and HttpRefusal of gateway/src/ops/http-refusals.ts;
 * - the local box OTA's refusals (its stats): OtaServerRefusal of
 *   gateway/src/ota/ota-server.ts, with OtaRefusal of ota-response.ts and HttpRefusal.
 * Checked against README.md and docs/*.md: every name is in some doc (a name built at run
 * time also as its family and value, as docs/media-process.md lists the media process's
 * counts under `media_<reason>`); every `gateway_*`
 * name a doc gives is registered; every name a doc gives as a label value of the counters
 * (`reason="..."`, `event="..."`) is one the code counts.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { readTracked, repoDocs, trackedFiles } from "./support/repo-docs.ts";

const METRICS_FILE = "gateway/src/ops/metrics.ts";

/** Comments out, strings kept (a `//` inside a string here is never a comment). */
function withoutComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`])\/\/.*$/gm, "$1");
}

/** The text of a type alias's declaration in a file, comments out. */
function typeBody(source: string, file: string, name: string): string {
  const m = new RegExp(`\\btype ${name}\\s*=`).exec(source);
  assert.ok(m, `${file} declares type ${name}`);
  // The declaration runs to its `;` outside braces (object members end in `;` too).
  let depth = 0;
  let end = m.index + m[0].length;
  for (; end < source.length; end++) {
    const c = source[end];
    if (c === "{") depth++;
    else if (c === "}") depth--;
    else if (c === ";" && depth === 0) break;
  }
  return source.slice(m.index + m[0].length, end);
}

/**
 * The string literals of a type alias in a file, following aliases of the same file it
 * names (`type A = B | "x"`), and the literal fields of object members (`{ error: "x" }`).
 */
function unionMembers(file: string, typeName: string): string[] {
  const source = withoutComments(readTracked(file));
  const seen = new Set<string>();
  const members = (name: string): string[] => {
    if (seen.has(name)) return [];
    seen.add(name);
    const body = typeBody(source, file, name);
    const literals = [...body.matchAll(/"([^"]+)"/g)].map((l) => l[1] ?? "");
    const aliases = [...body.matchAll(/\b([A-Z]\w*)\b/g)]
      .map((a) => a[1] ?? "")
      .filter((a) => new RegExp(`\\btype ${a}\\s*=`).test(source));
    return [...literals, ...aliases.flatMap(members)];
  };
  return members(typeName);
}

/** The string literals one field of a type alias's object members can hold. */
function fieldMembers(file: string, typeName: string, field: string): string[] {
  const body = typeBody(withoutComments(readTracked(file)), file, typeName);
  const types = [...body.matchAll(new RegExp(`\\b${field}\\??:\\s*("[^"]+"(?:\\s*\\|\\s*"[^"]+")*)`, "g"))];
  return types.flatMap((t) => [...(t[1] ?? "").matchAll(/"([^"]+)"/g)].map((l) => l[1] ?? ""));
}

/** The names the media process counts (Go, not its tests), as it counts them. */
function mediaCounts(): string[] {
  const names: string[] = [];
  for (const file of trackedFiles().filter((f) => /^media\/.*\.go$/.test(f) && !f.endsWith("_test.go"))) {
    const source = readTracked(file);
    for (const call of source.matchAll(/\.Count\(([^)]*)\)/g)) {
      const literal = call[1]?.match(/^"([a-z0-9_]+)"$/);
      assert.ok(literal?.[1], `${file}: Count(${call[1]}) is not a name this test can read; handle it here`);
      names.push(literal[1]);
    }
  }
  return names;
}

/**
 * The event names built at run time, by the template as written (`prefix_${expression}`),
 * with the code whose values fill it in; each value is given the template's prefix.
 */
const DYNAMIC: Readonly<Record<string, () => string[]>> = {
  // bridge.ts: an agent data message that does not parse, by parseAgentMessage's error.
  "agent_data_${m.error}": () =>
    unionMembers("gateway/src/agent/livekit/agent-protocol/agent-messages.ts", "AgentMessageError"),
  // bridge.ts: the greeting sent, by the trigger the session was configured with.
  "greeting_${this.#trigger}": () =>
    unionMembers("gateway/src/agent/livekit/agent-protocol/gateway-messages.ts", "GreetingTrigger"),
  // process-transport.ts: what the reorder buffer reports for a packet pushed.
  "agent_rtp_${counted}": () =>
    unionMembers("gateway/src/agent/livekit/media/jitter-buffer.ts", "JitterCount"),
  // media-process.ts: a frame from the child that does not decode.
  "media_frame_${m.error}": () => unionMembers("gateway/src/agent/livekit/media/ipc-codec.ts", "DecodeError"),
  // device-texts.ts: a transcription chunk refused, by the reason of TranscriptionResult.
  "agent_text_${r.reason}": () =>
    fieldMembers(
      "gateway/src/agent/livekit/agent-protocol/transcription.ts",
      "TranscriptionResult",
      "reason",
    ),
  // gateway.ts: a datagram or device message that does not parse. Passed to #drop, which
  // takes a DropReason: TypeScript holds these to that union, which is read whole.
  "udp_${parsed.reason}": () => [],
  "mqtt_${parsed.reason}": () => [],
  // transports.ts: the media process's own counts, prefixed.
  "media_${reason}": mediaCounts,
};

/**
 * Names passed on, by file and the expression passed: where the names they carry are read.
 * (Each is a parameter or field filled by call sites this test reads elsewhere.)
 */
const PASSED_ON: ReadonlySet<string> = new Set([
  // The drop callbacks handed to the bridge, the transports and the tool calls: their call sites are read.
  "gateway/src/agent/livekit/bridge.ts: reason",
  "gateway/src/agent/livekit/factory.ts: reason",
  "gateway/src/agent/livekit/transports.ts: reason",
  // DeviceTextResult.drop: the `drop:` fields of device-texts.ts are read.
  "gateway/src/agent/livekit/bridge.ts: r.drop",
  // #refuse(reason): its call sites are read.
  "gateway/src/agent/livekit/media/media-process.ts: reason",
  // DropReason-typed: the union is read.
  "gateway/src/app.ts: reason",
  "gateway/src/session/gateway.ts: reason",
  "gateway/src/session/gateway.ts: route.reason",
  "gateway/src/session/device-session.ts: verdict.reason",
]);

/** The first argument of a call whose `(` is at `open` (the text up to its `,` or `)` at depth 0). */
function firstArgument(source: string, open: number): string {
  let depth = 0;
  let quote: string | undefined;
  for (let i = open + 1; i < source.length; i++) {
    const c = source[i] ?? "";
    if (quote) {
      if (c === "\\") i++;
      else if (c === quote) quote = undefined;
      continue;
    }
    if (c === '"' || c === "'" || c === "`") quote = c;
    else if (c === "(" || c === "[" || c === "{") depth++;
    else if ((c === ")" || c === "]" || c === "}") && depth > 0) depth--;
    else if ((c === ")" || c === "," || c === "}") && depth === 0) return source.slice(open + 1, i).trim();
  }
  return source.slice(open + 1).trim();
}

interface CodeNames {
  readonly metrics: Set<string>;
  readonly drops: Set<string>;
  readonly closes: Set<string>;
  readonly events: Set<string>;
  /** The names built at run time: each with the template's prefix and the value after it. */
  readonly built: Map<string, { readonly prefix: string; readonly value: string }>;
  /** Call sites this test cannot read. */
  readonly unreadable: string[];
}

function codeNames(): CodeNames {
  const metricsSource = withoutComments(readTracked(METRICS_FILE));
  const metrics = new Set([...metricsSource.matchAll(/"(gateway_[a-z0-9_]+)"/g)].map((m) => m[1] ?? ""));
  const drops = new Set(unionMembers(METRICS_FILE, "DropReason"));
  const closes = new Set(unionMembers(METRICS_FILE, "CloseReason"));
  const events = new Set<string>();
  const built = new Map<string, { prefix: string; value: string }>();
  const unreadable: string[] = [];
  const take = (file: string, expression: string) => {
    // The agent side counts events by any name; the rest of the gateway drops by DropReason.
    const into = file.startsWith("gateway/src/agent/") ? events : drops;
    const literal = /^"([a-z0-9_]+)"$/;
    const choice = /^[^`]+\?\s*"([a-z0-9_]+)"\s*:\s*"([a-z0-9_]+)"$/;
    const template = /^`([^`]*)`$/;
    const one = expression.match(literal) ?? expression.match(choice);
    if (one) {
      for (const n of one.slice(1)) into.add(n ?? "");
      return;
    }
    const shape = expression.match(template)?.[1];
    const dynamic = shape === undefined ? undefined : DYNAMIC[shape];
    const prefix = shape?.slice(0, shape.indexOf("${")) ?? "";
    if (dynamic) {
      for (const value of dynamic()) {
        into.add(prefix + value);
        built.set(prefix + value, { prefix, value });
      }
    } else if (!PASSED_ON.has(`${file}: ${expression}`)) unreadable.push(`${file}: ${expression}`);
  };
  const sources = trackedFiles().filter((f) => /^gateway\/src\/.*\.ts$/.test(f));
  for (const file of sources) {
    const source = withoutComments(readTracked(file));
    for (const call of source.matchAll(/[.#](?:drop|refuse)\(/g)) {
      const arg = firstArgument(source, call.index + call[0].length - 1);
      // A declaration (`#drop(reason: DropReason, ...) {`), not a call.
      if (/^[\w$]+\??\s*:/.test(arg)) continue;
      take(file, arg);
    }
    for (const field of source.matchAll(/\bdrop:\s*(?=["`])/g)) {
      take(file, firstArgument(`(${source.slice(field.index + field[0].length)}`, 0));
    }
    for (const call of source.matchAll(/\bagentEvents\.inc\(\{\s*event:\s*/g)) {
      const rest = source.slice(call.index + call[0].length);
      take(file, firstArgument(`(${rest}`, 0));
    }
  }
  return { metrics, drops, closes, events, built, unreadable };
}

const code = codeNames();

/** Why Node's HTTP server refused a request itself; the verifier and the OTA count these. */
const HTTP_REFUSALS = unionMembers("gateway/src/ops/http-refusals.ts", "HttpRefusal");

/** The reasons the device verifier counts its answers by (`/stats`: allowed, denied, refused). */
const VERIFIER_REASONS: ReadonlySet<string> = new Set([
  ...unionMembers("gateway/src/auth/verifier-server.ts", "AllowReason"),
  ...unionMembers("gateway/src/auth/verifier-server.ts", "DenyReason"),
  ...unionMembers("gateway/src/auth/verifier-server.ts", "VerifierRefusal"),
  ...unionMembers("gateway/src/auth/device-credentials.ts", "CredentialRejection"),
  ...HTTP_REFUSALS,
]);

/** The reasons the local box's OTA counts its refusals by. */
const OTA_REASONS: ReadonlySet<string> = new Set([
  ...unionMembers("gateway/src/ota/ota-server.ts", "OtaServerRefusal"),
  ...unionMembers("gateway/src/ota/ota-response.ts", "OtaRefusal"),
  ...HTTP_REFUSALS,
]);
const docs = repoDocs();

const word = (name: string) => new RegExp(`(?<![A-Za-z0-9_])${name}(?![A-Za-z0-9_])`);

/**
 * Whether some doc gives a name: as a word of its own, or, for a name built at run time,
 * as its family and value in one doc (`agent_data_<reason>` ... `oversized`;
 * `media_<reason>` ... `opus_before_joined`).
 */
function documented(name: string): boolean {
  const family = code.built.get(name);
  return docs.some(
    (d) =>
      word(name).test(d.text) ||
      (family !== undefined && d.text.includes(`${family.prefix}<`) && word(family.value).test(d.text)),
  );
}

describe("the counters and metrics the docs name are the code's", () => {
  test("every counting call site is one this test can read", () => {
    assert.deepEqual(code.unreadable, [], "handle these in DYNAMIC or PASSED_ON");
  });

  test("every metric gateway/src/ops/metrics.ts registers is in the docs", () => {
    const missing = [...code.metrics].filter((m) => !documented(m));
    assert.deepEqual(missing, [], `metrics no doc names:\n${missing.join("\n")}`);
  });

  test("every gateway_* name in the docs is a registered metric", () => {
    const wrong: string[] = [];
    for (const d of docs) {
      for (const m of d.text.matchAll(/(?<![A-Za-z0-9_])gateway_[a-z0-9_]+/g)) {
        // A summary's series: <name>_sum, <name>_count.
        const name = m[0].replace(/_(sum|count)$/, "");
        if (!code.metrics.has(m[0]) && !code.metrics.has(name)) wrong.push(`${d.path}: ${m[0]}`);
      }
    }
    assert.deepEqual(
      wrong,
      [],
      `metric names in the docs that the gateway does not register:\n${wrong.join("\n")}`,
    );
  });

  test("every drop, close and event name the code counts is in the docs", () => {
    const missing: string[] = [];
    for (const n of code.drops) if (!documented(n)) missing.push(`drop ${n}`);
    for (const n of code.closes) if (!documented(n)) missing.push(`close ${n}`);
    for (const n of code.events) if (!documented(n)) missing.push(`event ${n}`);
    assert.deepEqual(missing, [], `counted by the code, named in no doc:\n${missing.join("\n")}`);
  });

  test("every reason the device verifier counts is in the docs", () => {
    assert.ok(VERIFIER_REASONS.has("bad_password"), "the verifier's reasons were read");
    const missing = [...VERIFIER_REASONS].filter((n) => !documented(n));
    assert.deepEqual(missing, [], `verifier reasons named in no doc:\n${missing.join("\n")}`);
  });

  test("every reason the OTA counts a refusal by is in the docs", () => {
    assert.ok(
      OTA_REASONS.has("mac_mismatch") && OTA_REASONS.has("request_timeout"),
      "the OTA's reasons were read",
    );
    const missing = [...OTA_REASONS].filter((n) => !documented(n));
    assert.deepEqual(missing, [], `OTA reasons named in no doc:\n${missing.join("\n")}`);
  });

  test("every reason or event a doc gives as a counter label is counted by the code", () => {
    const wrong: string[] = [];
    for (const d of docs) {
      for (const m of d.text.matchAll(/\b(reason|event)="([^"]+)"/g)) {
        const [, label, values] = m;
        // `reason="exited|hung|not_ready"`: the Opus worker restarts' reasons; `media_<reason>`: a pattern.
        for (const v of (values ?? "").split("|")) {
          if (v.includes("<")) continue;
          const known =
            label === "event"
              ? code.events.has(v)
              : code.drops.has(v) || code.closes.has(v) || isWorkerLoss(v);
          if (!known) wrong.push(`${d.path}: ${label}="${v}"`);
        }
      }
    }
    assert.deepEqual(
      wrong,
      [],
      `counter labels in the docs that the code never counts:\n${wrong.join("\n")}`,
    );
  });
});

/**
 * The docs' lists of counters, by doc and section heading: there every name in inline code
 * that looks like a counter's (lower case with an underscore) must be one the code counts
 * (a media process count also without its prefix, a family's value beside its family).
 * NOT_COUNTERS: the other names those sections give, each said why.
 */
const COUNTER_LISTS: readonly { readonly doc: string; readonly heading: string }[] = [
  { doc: "docs/media-process.md", heading: "## Bounds and drops" },
  { doc: "docs/agent-data-channel.md", heading: "## Bad input" },
  { doc: "docs/runbook.md", heading: "## 7. Watch" },
];
const NOT_COUNTERS: ReadonlySet<string> = new Set([
  // gateway_opus_worker_restarts_total's reasons, read below (isWorkerLoss).
  "not_ready",
  // EMQX's rule (docs/runbook.md).
  "device_ingest",
]);

test("every counter a doc's counter list gives is one the code counts", () => {
  const known = (n: string): boolean =>
    code.drops.has(n) ||
    code.closes.has(n) ||
    code.events.has(n) ||
    code.metrics.has(n) ||
    VERIFIER_REASONS.has(n) ||
    OTA_REASONS.has(n) ||
    isWorkerLoss(n) ||
    [...code.built.values()].some((b) => b.value === n);
  const wrong: string[] = [];
  for (const { doc, heading } of COUNTER_LISTS) {
    const text = docs.find((d) => d.path === doc)?.text ?? "";
    const start = text.indexOf(`\n${heading}\n`);
    assert.ok(start >= 0, `${doc} has the section ${heading}`);
    const end = text.indexOf("\n## ", start + 1);
    const section = text.slice(start, end < 0 ? undefined : end);
    for (const m of section.matchAll(/`([a-z][a-z0-9]*(?:_[a-z0-9]+)+)`/g)) {
      const n = m[1] ?? "";
      if (!known(n) && !NOT_COUNTERS.has(n)) wrong.push(`${doc} (${heading}): ${n}`);
    }
  }
  assert.deepEqual(
    wrong,
    [],
    `names in the docs' counter lists that the code never counts:\n${wrong.join("\n")}`,
  );
});

/** gateway_opus_worker_restarts_total's reasons (WORKER_LOSS_REASONS). */
function isWorkerLoss(reason: string): boolean {
  const source = readTracked("gateway/src/audio/opus-worker-loss.ts");
  const list = source.match(/WORKER_LOSS_REASONS\s*=\s*\[([^\]]*)\]/)?.[1] ?? "";
  return [...list.matchAll(/"([^"]+)"/g)].some((m) => m[1] === reason);
}
