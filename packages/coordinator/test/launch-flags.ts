import { LAUNCH_DEFAULTS, type LaunchFlags } from "../src/run-config";

/** The launch flags as commander hands them over: the defaults, a data path, then the overrides. */
export function flags(overrides: Partial<LaunchFlags> = {}): LaunchFlags {
  return {
    ...LAUNCH_DEFAULTS,
    globalCropsScale: [...LAUNCH_DEFAULTS.globalCropsScale],
    localCropsScale: [...LAUNCH_DEFAULTS.localCropsScale],
    dataPath: "/data/train",
    ...overrides,
  } as LaunchFlags;
}

/** `explicit(name)` for resolveLaunch: true for the flags the user typed. */
export const given = (...names: Array<keyof LaunchFlags>) => (name: keyof LaunchFlags) => names.includes(name);
