/**
 * The Pulumi program of infra/test/runbook-recovery.test.ts: the gateway slot's part of
 * infra/fleet-stack.ts in miniature. A droplet, the reserved IP, and the assignment that
 * waits for the droplet's device listener through the real readiness probe (readiness.ts),
 * in the same shape as the stack: the assignment's droplet id is an apply that rejects when
 * the droplet never gets ready, so a replacement whose new droplet does not get ready
 * fails `pulumi up` after the new droplet exists, as in production.
 *
 * The resources are the real @pulumi/digitalocean classes, so types and URNs are those of
 * the stack (urn:pulumi:prod::voice-fleet::voice-fleet:infra:GatewayBox$digitalocean:...); the test puts a stand-in `digitalocean` provider on PATH
 * (fake-digitalocean.ts), which the engine loads instead of the real one.
 *
 * Inputs come from the environment the test sets for each `pulumi up`:
 *   RUNBOOK_TEST_USER_DATA   the droplet's user data (a change replaces the droplet)
 *   RUNBOOK_TEST_SSH_KEYS    its admin SSH keys, comma-separated (a change replaces it too)
 *   RUNBOOK_TEST_PINNED      "true": the slot is pinned (gatewayPinnedSlots), so the droplet
 *                            ignores what gateway-box.ts has it ignore (PINNED_IGNORED)
 *   RUNBOOK_TEST_VPC         the id of its VPC (a new vpcIpRange means a new VPC)
 *   RUNBOOK_TEST_READY_PORT  the port the readiness probe tries on the droplet's address
 */
import * as digitalocean from "@pulumi/digitalocean";
import * as pulumi from "@pulumi/pulumi";
import { PINNED_IGNORED } from "../../gateway-box.ts";
import { tcpReadiness } from "../../readiness.ts";

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (the test sets it)`);
  return value;
}

// timeoutMs 0: one attempt, then the same error `pulumi up` gives after its 20 minutes.
const gatewayReady = tcpReadiness({
  ports: [Number(required("RUNBOOK_TEST_READY_PORT"))],
  timeoutMs: 0,
  log: (line) => pulumi.log.info(line),
});

// The droplet is a child of a GatewayBox component, as in gateway-box.ts, so its URN is
// the one the runbook's commands meet in production.
const box = new pulumi.ComponentResource("voice-fleet:infra:GatewayBox", "gateway-a", {});
const droplet = new digitalocean.Droplet(
  "gateway-a",
  {
    name: "voice-fleet-prod-gateway-a",
    region: "fra1",
    size: "s-8vcpu-32gb-amd",
    image: "ubuntu-24-04-x64",
    userData: required("RUNBOOK_TEST_USER_DATA"),
    sshKeys: required("RUNBOOK_TEST_SSH_KEYS").split(","),
    vpcUuid: required("RUNBOOK_TEST_VPC"),
  },
  { parent: box, ignoreChanges: process.env.RUNBOOK_TEST_PINNED === "true" ? PINNED_IGNORED : [] },
);
const reservedIp = new digitalocean.ReservedIp("gateway-ip", { region: "fra1" });

// As fleet-stack.ts: the address moves only once the new droplet is ready.
const readyDropletId = pulumi.all([droplet.id, droplet.ipv4Address]).apply(async ([id, ip]) => {
  if (!pulumi.runtime.isDryRun()) await gatewayReady(ip);
  return Number(id);
});
new digitalocean.ReservedIpAssignment(
  "gateway-ip-assignment",
  { ipAddress: reservedIp.ipAddress, dropletId: readyDropletId },
  { dependsOn: [droplet] },
);

export const gatewayDropletId = droplet.id;
