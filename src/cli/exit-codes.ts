// The command line's exit codes (README "Command line"): one table for main and the commands.
export const EXIT = { ok: 0, failure: 1, usage: 2, outsideTargets: 3, interrupted: 130 } as const;
