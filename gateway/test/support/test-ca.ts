/**
 * A throwaway certificate authority and a server certificate for 127.0.0.1 signed by it,
 * made with the openssl command at test time (nothing secret is ever committed).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

export interface TestCa {
  /** The CA certificate (PEM): what a client must trust. */
  readonly caPem: string;
  readonly certFile: string;
  readonly keyFile: string;
  remove(): void;
}

export function makeTestCa(): TestCa {
  const dir = mkdtempSync(path.join(tmpdir(), "vf-test-ca-"));
  const f = (name: string) => path.join(dir, name);
  const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  openssl(
    "req",
    "-x509",
    ...ec,
    "-keyout",
    f("ca.key"),
    "-out",
    f("ca.pem"),
    "-days",
    "1",
    "-subj",
    "/CN=voice-fleet test CA",
  );
  openssl("req", ...ec, "-keyout", f("server.key"), "-out", f("server.csr"), "-subj", "/CN=127.0.0.1");
  writeFileSync(f("ext.cnf"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  openssl(
    "x509",
    "-req",
    "-in",
    f("server.csr"),
    "-CA",
    f("ca.pem"),
    "-CAkey",
    f("ca.key"),
    "-CAcreateserial",
    "-out",
    f("server.pem"),
    "-days",
    "1",
    "-extfile",
    f("ext.cnf"),
  );
  return {
    caPem: readFileSync(f("ca.pem"), "utf8"),
    certFile: f("server.pem"),
    keyFile: f("server.key"),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
