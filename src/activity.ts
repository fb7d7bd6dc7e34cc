/**
 * What the boot is doing right now, for the boot's deadline (issue 13 item
 * 11; src/sys/native.ts armBootDeadline): the decision and the executor say
 * which step they start, with the file it concerns, and the deadline's
 * watcher names the last one if the boot never finishes. Nothing listens
 * outside the boot, so the text is only made when someone does.
 */

let sink: ((what: string) => void) | null = null;

/** Listen (null: stop). One listener: the boot's. */
export function onActivity(fn: ((what: string) => void) | null): void {
  sink = fn;
}

export function noteActivity(what: () => string): void {
  sink?.(what());
}
