/**
 * A logger that keeps its lines instead of writing them, for tests of what code logs and
 * how often. It stands where the code takes a narrow logger (a pino Logger in production).
 */

export interface RecordedLine {
  readonly level: "warn";
  readonly fields: Record<string, unknown>;
  readonly msg: string;
}

export class RecordingLog {
  readonly lines: RecordedLine[] = [];

  warn(fields: Record<string, unknown>, msg: string): void {
    this.lines.push({ level: "warn", fields, msg });
  }

  /** The lines with message `msg`. */
  withMessage(msg: string): RecordedLine[] {
    return this.lines.filter((l) => l.msg === msg);
  }
}
