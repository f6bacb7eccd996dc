/**
 * The verifier over HTTP (what EMQX posts) refuses a client id it cannot tell apart from
 * another: a lone surrogate (JSON "\ud800") and bytes that are not UTF-8 both used to read as
 * U+FFFD, so a password signed for the U+FFFD id was accepted for them. The shared vectors
 * (credential-vectors.test.ts) hold the rule itself; these show the HTTP body's path to it.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { deviceSignature } from "../src/auth/device-credentials.ts";
import type { DenyReason } from "../src/auth/verifier-server.ts";
import { startTestVerifier, type TestVerifier } from "./support/verifier.ts";

const KEY = "client-id-test-key";
const USERNAME = "eyJpcCI6IjEuMi4zLjQifQ=="; // base64 of {"ip":"1.2.3.4"}
const PREFIX = "GID_default@@@a0_85_e3_f4_49_34@@@dev-";
/** The password the OTA would give a device whose id ended in U+FFFD (it never does). */
const SIGNED_FOR_FFFD = deviceSignature(KEY, `${PREFIX}\ufffd`, USERNAME);

describe("the verifier refuses client ids it cannot tell apart", () => {
  let server: TestVerifier;
  before(async () => {
    server = await startTestVerifier(KEY);
  });
  after(async () => {
    await server.close();
  });

  const post = (body: Buffer) => server.post(body);
  /** The request body with the client id's JSON text spliced in as bytes. */
  const bodyWithId = (idJson: Buffer) =>
    Buffer.concat([
      Buffer.from('{"clientid":"'),
      idJson,
      Buffer.from(`","username":"${USERNAME}","password":"${SIGNED_FOR_FFFD}"}`),
    ]);
  const denied = (reason: DenyReason) => server.verifier.stats.denied.get(reason) ?? 0;

  it('a lone surrogate ("\\ud800") with the password signed for the U+FFFD id: denied, client_id_bad_characters', async () => {
    const before = denied("client_id_bad_characters");
    const r = await post(bodyWithId(Buffer.from(`${PREFIX}\\ud800`)));
    assert.deepEqual(r, { status: 200, body: { result: "deny" } });
    assert.equal(denied("client_id_bad_characters"), before + 1);
  });

  it("a byte that is not UTF-8 (FF) with the password signed for the U+FFFD id: 400, bad_request", async () => {
    const before = denied("bad_request");
    const r = await post(bodyWithId(Buffer.concat([Buffer.from(PREFIX), Buffer.from([0xff])])));
    assert.deepEqual(r, { status: 400, body: { result: "deny" } });
    assert.equal(denied("bad_request"), before + 1);
  });

  it("the U+FFFD id itself, correctly signed: denied, client_id_bad_characters", async () => {
    const before = denied("client_id_bad_characters");
    const r = await post(bodyWithId(Buffer.from(`${PREFIX}\ufffd`)));
    assert.deepEqual(r, { status: 200, body: { result: "deny" } });
    assert.equal(denied("client_id_bad_characters"), before + 1);
  });

  it("a well-formed non-ASCII id, correctly signed: allowed", async () => {
    const id = "GID_tést@@@a0_85_e3_f4_49_34@@@dev-\u{1F600}";
    const body = JSON.stringify({
      clientid: id,
      username: USERNAME,
      password: deviceSignature(KEY, id, USERNAME),
    });
    assert.deepEqual(await post(Buffer.from(body)), { status: 200, body: { result: "allow" } });
  });
});
