import { stdioWarnings, type StdioPolicy } from "@manifold/contracts";
import type { Logger } from "@manifold/telemetry";
import { accessSync, constants } from "node:fs";
import { dirname } from "node:path";

const writable = (path: string) => {
  try {
    accessSync(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
};

/**
 * Listed paths (commands, and the scripts they are pinned to) that this process's user may
 * change, or replace in their directory: a stdio upstream runs as that user, so whoever can
 * write there can run code with it. Only the path and its own directory are checked; a missing
 * path is reported when its directory is writable (anyone who can write there can create it).
 */
export function writableListedPaths(policy: StdioPolicy): string[] {
  const paths = new Set(policy.commands.flatMap((entry) => [entry.command, ...entry.leadingArgs.filter((arg) => arg.startsWith("/"))]));
  return [...paths].filter((path) => writable(path) || writable(dirname(path)));
}

/** Tells the operator, once at start, what in `MANIFOLD_STDIO_COMMANDS` lets more run than it seems to list. */
export function warnAboutListedCommands(policy: StdioPolicy, logger: Logger): void {
  for (const warning of stdioWarnings(policy)) logger.warn({ variable: "MANIFOLD_STDIO_COMMANDS" }, warning);
  const paths = writableListedPaths(policy);
  if (paths.length > 0) {
    const uid = process.getuid?.();
    logger.warn(
      { variable: "MANIFOLD_STDIO_COMMANDS", paths },
      uid === 0
        ? "the connector runs as root, so every listed stdio path is one it may change or replace, and every stdio upstream runs as root: run the connector as an unprivileged user, with the listed paths read-only and owned by another"
        : `listed stdio paths the connector's own user${uid === undefined ? "" : ` (uid ${uid})`} may change or replace: whoever can write them runs code as the connector; install them read-only, owned by another user`,
    );
  }
}
