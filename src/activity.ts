/**
 * What the boot is doing right now, for the boot's deadline (issue 13 item
 * 11; src/sys/native.ts armBootDeadline): the decision says which check it
 * starts, with the file it concerns; the executor hands over its steps' lines
 * once and then says which step starts, by number. The deadline's watcher
 * names the last one if the boot never finishes. Nothing listens outside the
 * boot, so the text is only made when someone does.
 */

export interface ActivitySink {
  /** A check starts (the decision). */
  note(what: string): void;
  /** The plan's steps, one line each ("<kind> <path>"), before the first runs. */
  steps(lines: readonly string[]): void;
  /** Step `index` (from 0) of those starts. */
  step(index: number): void;
}

let sink: ActivitySink | null = null;

/** Listen (null: stop). One listener: the boot's. */
export function onActivity(s: ActivitySink | null): void {
  sink = s;
}

export function noteActivity(what: () => string): void {
  sink?.note(what());
}

export function notePlanSteps(lines: () => string[]): void {
  sink?.steps(lines());
}

export function noteStep(index: number): void {
  sink?.step(index);
}
