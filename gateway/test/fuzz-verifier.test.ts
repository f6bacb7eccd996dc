/**
 * Property tests (fast-check) of the device verifier's request handling (what EMQX posts):
 * random bodies are never allowed, and a valid credential with one field damaged neither.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { deviceSignature } from "../src/auth/device-credentials.ts";
import { decideAuth } from "../src/auth/verifier-server.ts";
import { applyTextEdit, RUNS, Tally, textEdit } from "./support/fuzz.ts";

describe("the device verifier's request handling", () => {
  const KEY = "fuzz-signing-key";
  const clientId = "GID_default@@@a0_85_e3_f4_49_34@@@a0_85_e3_f4_49_34";
  const username = Buffer.from('{"ip":"198.51.100.4"}').toString("base64");
  const password = deviceSignature(KEY, clientId, username);
  const valid = { clientid: clientId, username, password };

  it("100,000 random request bodies: never throws, never allows, answers 200/400/413 with a known reason", () => {
    const tally = new Tally();
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
          fc.jsonValue({ maxDepth: 3 }).map((v) => Buffer.from(JSON.stringify(v) ?? "")),
          fc
            .record({
              clientid: fc.string({ maxLength: 140 }),
              username: fc.base64String({ maxLength: 40 }),
              password: fc.base64String({ maxLength: 48 }),
            })
            .map((v) => Buffer.from(JSON.stringify(v))),
          fc.integer({ min: 8000, max: 9000 }).map((n) => Buffer.alloc(n, 0x20)),
        ),
        (body) => {
          const d = decideAuth(KEY, body);
          tally.add(d.reason);
          return d.result === "deny" && [200, 400, 413].includes(d.status);
        },
      ),
      { numRuns: RUNS },
    );
    assert.equal(tally.total, RUNS);
  });

  it("100,000 valid credentials with one field mutated are never allowed (the unmutated ones are)", () => {
    assert.equal(decideAuth(KEY, Buffer.from(JSON.stringify(valid))).result, "allow");
    fc.assert(
      fc.property(
        fc.constantFrom("clientid", "username", "password"),
        textEdit.filter((e) => e.op !== "pad"),
        (field, edit) => {
          const mutated = { ...valid, [field]: applyTextEdit(valid[field as keyof typeof valid], edit) };
          const d = decideAuth(KEY, Buffer.from(JSON.stringify(mutated)));
          const same = mutated[field as keyof typeof valid] === valid[field as keyof typeof valid];
          return same ? d.result === "allow" : d.result === "deny";
        },
      ),
      { numRuns: RUNS },
    );
  });
});
