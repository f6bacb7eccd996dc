/**
 * The development OTA (gateway/src/ota/): the answer firmware gets (docs/device-protocol.md
 * section 1), its refusals, and the thin HTTP server in front of it on loopback.
 */
import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { after, before, describe, it } from "node:test";
import { firmwareOtaRequest } from "../../tools/sim/provision.ts";
import { verifyDeviceCredentials } from "../src/auth/device-credentials.ts";
import {
  answerOta,
  endpointToUrl,
  MAX_OTA_BODY_BYTES,
  type OtaAnswer,
  type OtaRequest,
} from "../src/ota/ota-response.ts";
import { type OtaServer, startOtaServer } from "../src/ota/ota-server.ts";

const KEY = "0f4b6c1d2e3a59687a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f";
const SETTINGS = { mqttEndpoint: "192.0.2.10:1883", signingKey: KEY };
const NOW = 1_780_000_000_000;
const MAC = "a0:85:e3:f4:49:34";
const UUID = "2f1c6a52-8d0e-4b3a-9c7e-5d4f3b2a1c0e";

function firmwareRequest(overrides: Partial<OtaRequest> = {}): OtaRequest {
  const { headers, body } = firmwareOtaRequest({ otaUrl: "unused", mac: MAC, uuid: UUID });
  return {
    method: "POST",
    headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v])),
    body: Buffer.from(body),
    remoteAddress: "::ffff:198.51.100.7",
    ...overrides,
  };
}

function ok(answer: OtaAnswer) {
  assert.ok(answer.ok, `expected a served answer, got ${JSON.stringify(answer)}`);
  return answer;
}

describe("OTA answer to a firmware-shaped request", () => {
  it("has an mqtt section with the endpoint, publish and subscribe topics, and no firmware or websocket", () => {
    const answer = ok(answerOta(firmwareRequest(), SETTINGS, NOW));
    assert.equal(answer.status, 200);
    assert.deepEqual(Object.keys(answer.body).sort(), ["mqtt", "server_time"]);
    assert.equal(answer.body.mqtt.endpoint, "192.0.2.10:1883");
    assert.equal(answer.body.mqtt.publish_topic, "device-server");
    assert.equal(answer.body.mqtt.subscribe_topic, `devices/p2p/${answer.body.mqtt.client_id}`);
    assert.deepEqual(answer.body.server_time, { timestamp: NOW, timezone_offset: 0 });
  });

  it("builds the three-part client id from the Device-Id and Client-Id headers", () => {
    const answer = ok(answerOta(firmwareRequest(), SETTINGS, NOW));
    assert.equal(answer.body.mqtt.client_id, `GID_default@@@a0_85_e3_f4_49_34@@@${UUID}`);
    assert.equal(answer.mac, MAC);
  });

  it("puts the peer's IPv4 address, without the mapped prefix, in the base64 JSON username", () => {
    const answer = ok(answerOta(firmwareRequest(), SETTINGS, NOW));
    assert.equal(Buffer.from(answer.body.mqtt.username, "base64").toString(), '{"ip":"198.51.100.7"}');
  });

  it("signs a password that the verifier's own check accepts", () => {
    const { mqtt } = ok(answerOta(firmwareRequest(), SETTINGS, NOW)).body;
    const verdict = verifyDeviceCredentials(KEY, {
      clientId: mqtt.client_id,
      username: mqtt.username,
      password: mqtt.password,
    });
    assert.deepEqual(verdict, { ok: true, mac: MAC });
    assert.equal(verifyDeviceCredentials(`${KEY}x`, { ...mqtt, clientId: mqtt.client_id }).ok, false);
  });

  it("lowercases an uppercase Device-Id", () => {
    const answer = ok(
      answerOta(
        firmwareRequest({ headers: { "device-id": MAC.toUpperCase(), "client-id": UUID } }),
        SETTINGS,
        NOW,
      ),
    );
    assert.equal(answer.body.mqtt.client_id, `GID_default@@@a0_85_e3_f4_49_34@@@${UUID}`);
  });

  it("uses the MAC as the third part when Client-Id is missing (as xinnan's manager-api)", () => {
    const answer = ok(answerOta(firmwareRequest({ headers: { "device-id": MAC } }), SETTINGS, NOW));
    assert.equal(answer.body.mqtt.client_id, "GID_default@@@a0_85_e3_f4_49_34@@@a0_85_e3_f4_49_34");
  });

  it("serves a GET with no body (firmware's form when it has no system info)", () => {
    ok(answerOta(firmwareRequest({ method: "GET", body: Buffer.alloc(0) }), SETTINGS, NOW));
  });
});

describe("OTA refusals", () => {
  const refused = (req: OtaRequest) => {
    const answer = answerOta(req, SETTINGS, NOW);
    assert.equal(answer.ok, false);
    return answer as Extract<OtaAnswer, { ok: false }>;
  };

  it("a missing Device-Id: 200 with xinnan's error text", () => {
    const a = refused(firmwareRequest({ headers: { "client-id": UUID } }));
    assert.deepEqual(
      [a.status, a.body, a.refusal],
      [200, { error: "Device ID is required" }, "missing_device_id"],
    );
  });

  it("a Device-Id that is not a colon MAC: 200 with an error", () => {
    for (const id of [
      "a0-85-e3-f4-49-34",
      "a0:85:e3:f4:49",
      "zz:85:e3:f4:49:34",
      " ",
      "a0:85:e3:f4:49:34/x",
    ]) {
      const a = refused(firmwareRequest({ headers: { "device-id": id, "client-id": UUID } }));
      assert.equal(a.status, 200);
      assert.ok(a.refusal === "bad_device_id" || a.refusal === "missing_device_id", id);
      assert.equal(typeof a.body.error, "string");
    }
  });

  it("a Client-Id that could break the client id or a topic: refused", () => {
    for (const id of ["x@@@y", "a/b", "a+b", "#", "x".repeat(65), "a\u0000b"]) {
      const a = refused(firmwareRequest({ headers: { "device-id": MAC, "client-id": id } }));
      assert.equal(a.refusal, "bad_client_id", JSON.stringify(id));
    }
  });

  it("a body that is not a JSON object, or whose mac_address differs from Device-Id", () => {
    for (const body of ["{", "[]", "42", "null", "\xff\xfe"]) {
      assert.equal(refused(firmwareRequest({ body: Buffer.from(body, "latin1") })).refusal, "bad_body", body);
    }
    const other = Buffer.from(JSON.stringify({ mac_address: "a0:85:e3:f4:49:35", application: {} }));
    assert.equal(refused(firmwareRequest({ body: other })).refusal, "mac_mismatch");
  });

  it("another method: 405", () => {
    const a = refused(firmwareRequest({ method: "PUT" }));
    assert.deepEqual([a.status, a.refusal], [405, "method_not_allowed"]);
  });

  it("a body over the limit: 413", () => {
    const a = refused(firmwareRequest({ body: Buffer.alloc(MAX_OTA_BODY_BYTES + 1, 0x20) }));
    assert.deepEqual([a.status, a.refusal], [413, "body_too_large"]);
  });
});

describe("how firmware reads the endpoint", () => {
  it("plain MQTT on any port but 8883; TLS on 8883 or with no port", () => {
    assert.equal(endpointToUrl("10.0.0.5:1883"), "mqtt://10.0.0.5:1883");
    assert.equal(endpointToUrl("mqtt.example.com:8883"), "mqtts://mqtt.example.com:8883");
    assert.equal(endpointToUrl("mqtt.example.com"), "mqtts://mqtt.example.com:8883");
    assert.throws(() => endpointToUrl(":1883"), RangeError);
    assert.throws(() => endpointToUrl("h:0"), RangeError);
  });
});

describe("the OTA server's settings", () => {
  it("refuses to start with an endpoint firmware would read as another host (an IPv6 address)", async () => {
    // Firmware splits `endpoint` at its first ':' (docs/device-protocol.md 1.4): for
    // `fd00::5:1883` it would dial host `fd00`, port `:5:1883`. Bracketed IPv6 fares no better.
    for (const mqttEndpoint of ["fd00::5:1883", "[fd00::5]:1883", "::1:1883"]) {
      const started = await startOtaServer({ settings: { ...SETTINGS, mqttEndpoint } }).then(
        async (ota) => {
          await ota.close();
          return true;
        },
        (err: Error) => {
          assert.ok(err instanceof RangeError, String(err));
          assert.match(err.message, /endpoint/);
          return false;
        },
      );
      assert.equal(started, false, `started with mqttEndpoint ${mqttEndpoint}`);
    }
  });
});

describe("the OTA HTTP server on loopback", () => {
  let ota: OtaServer;
  before(async () => {
    ota = await startOtaServer({ settings: SETTINGS, now: () => NOW });
  });
  after(async () => {
    await ota.close();
  });

  const send = (method: string, path: string, headers: Record<string, string>, body?: Buffer | string) =>
    new Promise<{ status: number; json: Record<string, unknown>; allow: string | undefined }>(
      (resolve, reject) => {
        const req = httpRequest({ host: "127.0.0.1", port: ota.port, method, path, headers }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              json: JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown>,
              allow: res.headers.allow,
            }),
          );
        });
        req.on("error", reject);
        req.end(body);
      },
    );

  it("answers a firmware POST on /xiaozhi/ota/ with the mqtt section, and counts it", async () => {
    const { headers, body } = firmwareOtaRequest({ otaUrl: ota.url, mac: MAC, uuid: UUID });
    const served = ota.stats.served;
    const res = await send("POST", "/xiaozhi/ota/", headers, body);
    assert.equal(res.status, 200);
    const mqtt = res.json.mqtt as Record<string, string>;
    assert.equal(mqtt.client_id, `GID_default@@@a0_85_e3_f4_49_34@@@${UUID}`);
    assert.equal(Buffer.from(mqtt.username as string, "base64").toString(), '{"ip":"127.0.0.1"}');
    assert.equal(ota.stats.served, served + 1);
  });

  it("a missing Device-Id: HTTP 200 with {error}, counted", async () => {
    const res = await send("POST", "/xiaozhi/ota/", { "content-type": "application/json" }, "{}");
    assert.deepEqual([res.status, res.json], [200, { error: "Device ID is required" }]);
    assert.ok((ota.stats.refused.missing_device_id ?? 0) >= 1);
  });

  it("DELETE: 405 with an Allow header and {error}", async () => {
    const res = await send("DELETE", "/xiaozhi/ota/", { "device-id": MAC });
    assert.equal(res.status, 405);
    assert.equal(res.allow, "POST, GET");
    assert.equal(typeof res.json.error, "string");
  });

  it("an oversized body: 413 with {error}, whether declared or streamed", async () => {
    const big = Buffer.alloc(MAX_OTA_BODY_BYTES + 100, 0x20);
    const declared = await send("POST", "/xiaozhi/ota/", { "device-id": MAC }, big);
    assert.equal(declared.status, 413);
    const streamed = await send(
      "POST",
      "/xiaozhi/ota/",
      { "device-id": MAC, "transfer-encoding": "chunked" },
      big,
    );
    assert.equal(streamed.status, 413);
    assert.equal(typeof streamed.json.error, "string");
  });

  it("another path: 404 with {error}, counted", async () => {
    const res = await send("POST", "/admin", { "device-id": MAC }, "{}");
    assert.deepEqual([res.status, res.json], [404, { error: "Not found" }]);
    assert.ok((ota.stats.refused.not_found ?? 0) >= 1);
  });
});
