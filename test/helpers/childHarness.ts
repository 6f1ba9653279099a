import { fileURLToPath } from "node:url";

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));

/** What every vitest project adds so that no process a test starts outlives its test (childRegistry.ts, leftoverChildren.ts). */
export const CHILD_HARNESS = { globalSetup: [here("./leftoverChildren.ts")], setupFiles: [here("./childRegistry.ts")] };
