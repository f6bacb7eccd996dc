/**
 * The verifier (auth/verifier-server.ts) on a free loopback port, and a POST as EMQX's HTTP
 * authenticator sends it: for the tests of its HTTP contract.
 */
import { createVerifier, type Verifier } from "../../src/auth/verifier-server.ts";
import { createLogger } from "../../src/ops/log.ts";

export interface TestVerifier {
  readonly verifier: Verifier;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** POSTs `body` (JSON) to `pathName`, the auth path by default; the answer's status and JSON body. */
  post(body: string | Buffer, pathName?: string): Promise<{ status: number; body: Record<string, unknown> }>;
  close(): Promise<void>;
}

export async function startTestVerifier(signingKey: string): Promise<TestVerifier> {
  const verifier = createVerifier({ signingKey, log: createLogger("silent", 0) });
  const url = `http://127.0.0.1:${await verifier.listen(0, "127.0.0.1")}`;
  return {
    verifier,
    url,
    async post(body, pathName = "/mqtt/auth") {
      const r = await fetch(`${url}${pathName}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      return { status: r.status, body: (await r.json()) as Record<string, unknown> };
    },
    close: () => verifier.close(),
  };
}
