/**
 * Identity of one membership of a collective group: a 32-bit FNV-1a hash of its kind, epoch
 * and ordered endpoint list. Every member computes the same value without talking to the
 * others, and frames from a previous membership (a ring before a worker was replaced) or
 * from another group carry a different id and are rejected as foreign.
 */
export function groupId(kind: string, endpoints: readonly string[], epoch: number): number {
  let h = 0x811c9dc5;
  for (const ch of `${kind}\n${epoch}\n${endpoints.join("\n")}`) {
    h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193);
  }
  return h >>> 0;
}
