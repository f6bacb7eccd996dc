/**
 * "Claims in docs are measured claims": every repository path README.md and docs/*.md
 * name must be a tracked file or folder, so a file split, moved or renamed cannot leave
 * the docs pointing at nothing.
 *
 * What is read as a path, and how it must resolve:
 * - rooted: a name whose first segment is one of the repository's own top-level entries
 *   (gateway/, media/, tools/, scripts/, .ci/, docs/, README.md ...), in inline code, a
 *   link target, a fenced block or plain prose: it must be that tracked file, or a folder
 *   holding tracked files. Build outputs (dist/, .cache/, .run/, node_modules/) are not
 *   tracked, so their paths are not rooted. A `npm test -- <filter>` argument is a part of
 *   test files' paths: some tracked file must contain it.
 * - partial: in inline code or prose (not a command line's words: those name files of
 *   the machine), a path with a folder, not rooted, ending in a source or doc file's
 *   extension (`session/upstream-guard.ts`): some tracked file's path must end with it.
 * - bare: the same, a file name alone (`jitter-buffer.ts`): some tracked file must have
 *   that name.
 * Not paths: URLs, absolute and home paths (a droplet's runtime paths, /tmp ...), and
 * anything with a placeholder or wildcard (<id>, ${clientid}, *, #, +: MQTT topics, globs).
 * The docs also quote other projects' sources (the firmware, the upstream gateways,
 * LiveKit, cloud-init ...): those names are in NOT_OURS, with their project; a name there
 * that is also a tracked path here is reported, so the list cannot hide one of ours.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type Doc, lineNumbers, repoDocs, trackedFiles } from "./support/repo-docs.ts";

/** File names and paths the docs quote from other projects, by project. */
const NOT_OURS_BY_PROJECT: Readonly<Record<string, readonly string[]>> = {
  "78/xiaozhi-esp32 (the device firmware) and 78/esp-ml307": [
    "main/ota.cc",
    "main/boards/common/board.cc",
    "main/system_info.cc",
    "main/application.cc",
    "main/protocols/mqtt_protocol.cc",
    "main/protocols/protocol.cc",
    "main/audio/audio_service.cc",
    "opus_decoder.cc",
    "docs/mqtt-udp.md",
    "docs/websocket.md",
    "docs/mcp-protocol.md",
    "esp_mqtt.cc",
  ],
  "the xiaozhi servers and MQTT gateways (xinnan-tech, k811069/Bunny_serve), the deployed agents": [
    "OTAController.java",
    "DeviceServiceImpl.java",
    "DeviceReportRespDTO.java",
    "MqttClientId.java",
    "application.yml",
    "utils/mqtt_config_v2.js",
    "app.js",
    "mqtt-protocol.js",
    "gateway/mqtt-gateway.js",
    "core/streaming-crypto.js",
    "livekit/livekit-bridge.js",
    "mqtt/virtual-connection.js",
    "mqtt-gateway/livekit/livekit-bridge.js",
    "main.py",
    "livekit-server/main.py",
    "livekit-server/requirements.txt",
    "livekit-server/src/mcp/mcp_client.py",
    "src/mcp/mcp_handler.py",
    "src/mcp/mcp_executor.py",
  ],
  "LiveKit (server, agents, Rust SDK)": [
    "pkg/service/agentservice.go",
    "pkg/service/roommanager.go",
    "pkg/service/rtcservice.go",
    "pkg/sfu/downtrack.go",
    "pkg/rtc/room.go",
    "pkg/sfu/rtpmunger.go",
    "voice/room_io/_output.py",
    "ipc/job_proc_lazy_main.py",
    "agents/src/constants.ts",
    "livekit/src/room/data_stream/incoming/manager.rs",
  ],
  "LiveKit's Go server SDK and pion/webrtc (what media/ builds against)": [
    "room.go",
    "publication.go",
    "peerconnection.go",
  ],
  "mochi-mqtt/server": ["server.go"],
  EMQX: ["bin/common_functions.sh"],
  "DigitalOcean (do-agent, droplet-agent, the API specification, the Terraform provider)": [
    "cmd/do-agent/config.go",
    "packaging/syscfg/systemd/droplet-agent.service",
    "specification/resources/droplets/models/droplet_create.yml",
    "specification/resources/databases/models/firewall_rule.yml",
    "docs/resources/database_firewall.md",
    "specification/resources/vpcs/models/vpc.yml",
    "digitalocean/vpc/resource_vpc.go",
  ],
  "hashicorp/terraform-plugin-sdk (under the DigitalOcean provider)": ["helper/validation/network.go"],
  "cloud-init": ["doc/rtd/explanation/vendordata.rst", "cloudinit/helpers.py", "config/cloud.cfg.tmpl"],
  "Node.js, @discordjs/opus, node-postgres": [
    "napi-inl.h",
    "deps/config/opus/linux/x64/config.h",
    "packages/pg-connection-string/index.js",
  ],
  // Not files: the MCP method the device answers (docs/agent-data-channel.md), and products.
  "not files": ["tools/call", "Node.js", "mqtt.js"],
  // A file on the machine that runs the tests, not in the repository (docs/agents-worker.md).
  pip: ["pip.conf"],
};
const NOT_OURS: ReadonlySet<string> = new Set(Object.values(NOT_OURS_BY_PROJECT).flat());

/** Build outputs and caches: made by the build and the tests, never tracked. */
const BUILT = /^(dist|\.cache|\.run|node_modules)\//;

const FILE_EXTENSIONS =
  /\.(ts|mjs|cjs|js|go|sh|md|py|json|ya?ml|cc|h|rs|java|txt|mod|conf|cfg|tmpl|rst|service)$/;

interface Mention {
  readonly doc: string;
  readonly line: number;
  readonly name: string;
  /** Command lines (fenced blocks, inline code of several words) are read for rooted paths only. */
  readonly where: "code" | "link" | "command" | "prose";
  /** A `npm test -- <filter>` argument. */
  readonly testFilter: boolean;
}

function mentions(doc: Doc): Mention[] {
  const found: Mention[] = [];
  const lineOf = lineNumbers(doc.text);
  const add = (offset: number, name: string, where: Mention["where"], testFilter = false) => {
    found.push({ doc: doc.path, line: lineOf(offset), name, where, testFilter });
  };
  // A command line's words; those after `npm test --` are test filters.
  const command = (offset: number, text: string) => {
    const filters = text.match(/\bnpm test --\s/);
    const filtersFrom = filters?.index === undefined ? Number.POSITIVE_INFINITY : filters.index;
    for (const w of text.matchAll(/\S+/g))
      add(offset + w.index, trimToken(w[0]), "command", w.index > filtersFrom);
  };
  // Fenced blocks (also indented, in a list) are read line by line as commands, then blanked.
  let rest = doc.text;
  for (const m of doc.text.matchAll(/^ *```[^\n]*\n[\s\S]*?^ *```[^\n]*$/gm)) {
    let at = m.index;
    for (const line of m[0].split("\n")) {
      command(at, line);
      at += line.length + 1;
    }
    rest = rest.slice(0, m.index) + " ".repeat(m[0].length) + rest.slice(m.index + m[0].length);
  }
  // Inline code: a span of one word is a name; a span of several is a command line.
  const inline = /`([^`]+)`/g;
  for (const m of rest.matchAll(inline)) {
    const span = m[1] ?? "";
    if (/^\s*\S+\s*$/.test(span)) add(m.index, span.trim(), "code");
    else command(m.index + 1, span);
  }
  rest = rest.replace(inline, (s) => " ".repeat(s.length));
  // Links, relative to the doc's own folder; an anchor is not part of the path.
  const link = /\]\(([^)\s]+)\)/g;
  const dir = doc.path.includes("/") ? doc.path.slice(0, doc.path.lastIndexOf("/") + 1) : "";
  for (const m of rest.matchAll(link)) {
    const target = (m[1] ?? "").replace(/#.*$/, "");
    if (target !== "" && !target.includes("://")) add(m.index, normalise(dir + target), "link");
  }
  rest = rest.replace(link, (s) => " ".repeat(s.length));
  for (const w of rest.matchAll(/\S+/g)) add(w.index, trimToken(w[0]), "prose");
  return found;
}

function trimToken(token: string): string {
  return token.replace(/^[("'[]+/, "").replace(/[)"',.;:\]]+$/, "");
}

function normalise(p: string): string {
  const out: string[] = [];
  for (const part of p.split("/")) {
    if (part === "..") out.pop();
    else if (part !== ".") out.push(part);
  }
  return out.join("/");
}

const isNotAPath = (name: string) =>
  name === "" || name.includes("://") || /^[/~]/.test(name) || /[<>*${}#+=@\s|\\]/.test(name);

/** The tracked paths, indexed the ways a mention is resolved. */
interface Tree {
  readonly files: readonly string[];
  /** Files and the folders holding them. */
  readonly paths: ReadonlySet<string>;
  /** Every tail of a file's path after a `/`, and the whole path: partial and bare names. */
  readonly tails: ReadonlySet<string>;
  readonly tops: ReadonlySet<string>;
}

function tree(files: readonly string[]): Tree {
  const paths = new Set<string>();
  const tails = new Set<string>();
  for (const f of files) {
    const parts = f.split("/");
    for (let i = 1; i <= parts.length; i++) paths.add(parts.slice(0, i).join("/"));
    for (let i = 0; i < parts.length; i++) tails.add(parts.slice(i).join("/"));
  }
  return { files, paths, tails, tops: new Set(files.map((f) => f.split("/")[0] ?? "")) };
}

/** Why a mention does not resolve; undefined when it does, or when it is not a path of this repository. */
function problem(m: Mention, t: Tree): string | undefined {
  const name = m.name;
  if (isNotAPath(name) || BUILT.test(name)) return undefined;
  const bare = name.replace(/\/$/, "");
  if (NOT_OURS.has(name)) {
    return t.paths.has(bare) || t.tails.has(bare)
      ? "listed in NOT_OURS, but it is a tracked path here"
      : undefined;
  }
  const rooted = t.tops.has(name.split("/")[0] ?? "") && (name.includes("/") || !name.startsWith("."));
  if (rooted) {
    if (m.testFilter) return t.files.some((f) => f.includes(name)) ? undefined : "matches no tracked file";
    return t.paths.has(bare) ? undefined : "no such tracked file or folder";
  }
  if (m.where === "link" || m.where === "command" || !FILE_EXTENSIONS.test(name) || !/^[\w@-]/.test(name)) {
    return undefined;
  }
  if (t.tails.has(name)) return undefined;
  return name.includes("/") ? "no tracked file ends with it" : "no tracked file has this name";
}

test("every repository path README.md and docs/*.md name is a tracked file or folder", () => {
  const t = tree(trackedFiles());
  const wrong: string[] = [];
  for (const doc of repoDocs()) {
    for (const m of mentions(doc)) {
      const why = problem(m, t);
      if (why) wrong.push(`${m.doc}:${m.line}: ${m.name} (${m.where}): ${why}`);
    }
  }
  assert.deepEqual(wrong, [], `paths in the docs that do not resolve:\n${wrong.join("\n")}`);
});
