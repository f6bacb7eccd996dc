/**
 * Private network namespaces for tests that need a second host without any traffic leaving
 * this machine: each namespace has its own loopback, interfaces and ports, and two of them
 * joined by a veth pair are two hosts on one LAN. Needs root, `unshare`, `nsenter` and `ip`
 * (iproute2, in .ci/apt-packages.txt). Nothing is created in the test's own namespace: the
 * veth pair is made inside one namespace with its peer sent straight into the other.
 *
 * A namespace lives as long as one process is in it. `destroy()` (and this process's `exit`
 * event) SIGKILLs every process in it, whoever started it there (a PM2 daemon and its apps,
 * a broker), and so the namespace, its interfaces and their ports go with them. If this
 * process dies without its `exit` event, the holder still ends (its pipe from us closes);
 * what the test started inside is then left to its own stop (the local box stops itself
 * on SIGINT and SIGTERM).
 */
import {
  type ChildProcess,
  type SpawnOptions,
  type SpawnSyncOptionsWithStringEncoding,
  type SpawnSyncReturns,
  spawn,
  spawnSync,
} from "node:child_process";
import { readdirSync, readlinkSync } from "node:fs";
import { createInterface } from "node:readline";

export interface NetNamespace {
  /** A label for messages. */
  readonly name: string;
  /** The process that holds the namespace (a `cat` inside it, reading a pipe from us). */
  readonly pid: number;
  /** Starts `command` inside the namespace (nsenter execs it: the child is the command). */
  spawn(command: string, args: readonly string[], options?: SpawnOptions): ChildProcess;
  /** Runs `command` inside the namespace to its end, as node's spawnSync. */
  spawnSync(
    command: string,
    args: readonly string[],
    options: SpawnSyncOptionsWithStringEncoding,
  ): SpawnSyncReturns<string>;
  /** Runs `command` inside the namespace to its end; throws with its output if it fails. */
  run(command: string, args: readonly string[]): string;
  /** Pids of every process in the namespace now, the holder included. */
  pids(): number[];
  /** SIGKILLs every process in it until none is left; the namespace then goes. */
  destroy(): Promise<void>;
}

/** The namespaces not yet destroyed, by their namespace id: killed at this process's exit. */
const live = new Set<string>();
let hooked = false;

/** A fresh network namespace with its loopback up. */
export async function createNamespace(name: string): Promise<NetNamespace> {
  if (process.getuid?.() !== 0) throw new Error("network namespaces need root");
  const holder = spawn(
    "unshare",
    // It waits on a pipe from us: if we die without a word (SIGKILL), it ends with us.
    ["-n", "sh", "-c", "ip link set lo up && echo ready && exec cat >/dev/null"],
    { stdio: ["pipe", "pipe", "pipe"] },
  );
  let stderr = "";
  holder.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  await new Promise<void>((resolve, reject) => {
    const failed = (why: string) =>
      reject(new Error(`namespace ${name}: ${why}${stderr ? `: ${stderr}` : ""}`));
    holder.once("error", (err) => failed(err.message));
    holder.once("exit", (code) => failed(`unshare exited ${code}`));
    createInterface({ input: holder.stdout as NodeJS.ReadableStream }).once("line", (line) =>
      line === "ready" ? resolve() : failed(`unexpected output ${line}`),
    );
  });
  const pid = holder.pid;
  if (pid === undefined) throw new Error(`namespace ${name}: no holder pid`);
  const inode = namespaceOf(pid);
  // Never let a namespace that is ours pass for a private one: destroy() kills everything in it.
  if (inode === undefined || inode === namespaceOf(process.pid))
    throw new Error(`namespace ${name}: the holder is not in a namespace of its own`);

  const enter = (command: string, args: readonly string[]) => [
    "-t",
    String(pid),
    "-n",
    "--",
    command,
    ...args,
  ];
  const ns: NetNamespace = {
    name,
    pid,
    spawn: (command, args, options = {}) => spawn("nsenter", enter(command, args), options),
    spawnSync: (command, args, options) => spawnSync("nsenter", enter(command, args), options),
    run(command, args) {
      const res = ns.spawnSync(command, args, { encoding: "utf8", timeout: 30_000 });
      if (res.status !== 0)
        throw new Error(
          `in namespace ${name}: ${command} ${args.join(" ")} failed: ${res.error?.message ?? ""}${res.stderr}`,
        );
      return res.stdout;
    },
    pids: () => pidsIn(inode),
    async destroy() {
      // Again until none is left: a process may fork while it is being killed (a dead one
      // no longer shows its namespace, so this ends once the kills have landed).
      const deadline = Date.now() + 10_000;
      while (killAllIn(inode) > 0) {
        if (Date.now() > deadline)
          throw new Error(`namespace ${name}: processes survive SIGKILL: ${pidsIn(inode).join(" ")}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      live.delete(inode);
      // The holder is our child: its exit is the sign the kill went through.
      if (holder.exitCode === null && holder.signalCode === null)
        await new Promise<void>((resolve) => holder.once("exit", () => resolve()));
    },
  };
  live.add(inode);
  if (!hooked) {
    hooked = true;
    process.on("exit", () => {
      for (const id of live) killAllIn(id);
    });
  }
  return ns;
}

export interface VethEnd {
  readonly ns: NetNamespace;
  /** Interface name inside that namespace (private to it: no clash with the host's). */
  readonly ifname: string;
  /** CIDR addresses, added in order: the first of a subnet is its primary address. */
  readonly addresses: readonly string[];
}

/** Joins two namespaces with a veth pair, addresses both ends and brings them up. */
export function linkNamespaces(a: VethEnd, b: VethEnd): void {
  a.ns.run("ip", [
    "link",
    "add",
    a.ifname,
    "type",
    "veth",
    "peer",
    "name",
    b.ifname,
    "netns",
    String(b.ns.pid),
  ]);
  for (const end of [a, b]) {
    for (const address of end.addresses) end.ns.run("ip", ["addr", "add", address, "dev", end.ifname]);
    end.ns.run("ip", ["link", "set", end.ifname, "up"]);
  }
}

function namespaceOf(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/net`);
  } catch {
    return undefined;
  }
}

function pidsIn(inode: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (Number.isInteger(pid) && pid > 0 && namespaceOf(pid) === inode) pids.push(pid);
  }
  return pids;
}

/** SIGKILLs every process in the namespace now; returns how many there were. */
function killAllIn(inode: string | undefined): number {
  // Never our own namespace: that would be every process on the host.
  if (inode === undefined || inode === namespaceOf(process.pid)) return 0;
  const pids = pidsIn(inode);
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
  return pids.length;
}
