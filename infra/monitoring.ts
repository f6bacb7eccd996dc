/**
 * What the on-call sees in the DigitalOcean control panel: one Project holding the
 * fleet, and CPU / memory / disk alerts per role, mailed to the configured address.
 * Alerts target tags, so replaced droplets are covered without a change here.
 * (DigitalOcean mails only addresses verified on the team.)
 */
import * as digitalocean from "@pulumi/digitalocean";
import * as pulumi from "@pulumi/pulumi";
import type { Settings } from "./config.ts";

export interface AlertSpec {
  readonly metric: "cpu" | "memory" | "disk";
  readonly type: string;
  /** Percent. */
  readonly value: number;
  readonly window: "5m" | "10m" | "30m" | "1h";
}

/** Gateway RAM is the expected bottleneck (~24 of 32 GB at 1000 devices): memory warns at 85 %. */
export const ALERTS: readonly AlertSpec[] = [
  { metric: "cpu", type: "v1/insights/droplet/cpu", value: 85, window: "10m" },
  { metric: "memory", type: "v1/insights/droplet/memory_utilization_percent", value: 85, window: "10m" },
  { metric: "disk", type: "v1/insights/droplet/disk_utilization_percent", value: 80, window: "30m" },
];

export interface FleetMonitoringArgs {
  readonly settings: Settings;
  /** Role name (gateway, api) -> tag name. */
  readonly roleTags: Readonly<Record<string, pulumi.Input<string>>>;
  /** URNs of the droplets that belong in the Project (never the reserved IP: stack.ts says why). */
  readonly projectResources: readonly pulumi.Input<string>[];
}

export class FleetMonitoring extends pulumi.ComponentResource {
  readonly project: digitalocean.Project;
  readonly alerts: digitalocean.MonitorAlert[] = [];

  constructor(name: string, args: FleetMonitoringArgs, opts?: pulumi.ComponentResourceOptions) {
    super("voice-fleet:infra:FleetMonitoring", name, {}, opts);
    const s = args.settings;

    this.project = new digitalocean.Project(
      `${name}-project`,
      {
        name: s.projectName,
        description: "Voice gateway fleet: gateway droplet(s) and the API droplet",
        environment: "Production",
        purpose: "IoT",
        resources: [...args.projectResources],
      },
      { parent: this },
    );

    for (const [role, tag] of Object.entries(args.roleTags)) {
      for (const a of ALERTS) {
        this.alerts.push(
          new digitalocean.MonitorAlert(
            `${name}-${role}-${a.metric}`,
            {
              description: `${s.projectName} ${role}: ${a.metric} above ${a.value}% for ${a.window}`,
              type: a.type,
              compare: "GreaterThan",
              value: a.value,
              window: a.window,
              tags: [tag],
              enabled: true,
              alerts: { emails: [s.alertEmail] },
            },
            { parent: this },
          ),
        );
      }
    }
    this.registerOutputs({ projectId: this.project.id });
  }
}
