import { readdirSync } from "node:fs";
import { readFile } from "node:fs/promises";

/** 01 in /proc/net/tcp's `st` column: ESTABLISHED. A closed peer's end is CLOSE_WAIT (08) instead. */
const ESTABLISHED = "01";

const portOf = (address: string | undefined) => (address ? parseInt(address.slice(address.lastIndexOf(":") + 1), 16) : NaN);

async function established(which: "local" | "remote", port: number, unread = false): Promise<number> {
  let count = 0;
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of (await readFile(file, "utf8").catch(() => "")).split("\n").slice(1)) {
      const [, local, remote, state, queues] = line.trim().split(/\s+/);
      if (state !== ESTABLISHED || portOf(which === "local" ? local : remote) !== port) continue;
      // `tx_queue:rx_queue`: bytes received that the process has not read.
      if (!unread || parseInt(queues?.split(":")[1] ?? "0", 16) > 0) count++;
    }
  }
  return count;
}

/** Established TCP connections to `port` on this host, on the connecting side: each holds one of its file descriptors. */
export const connectionsTo = (port: number): Promise<number> => established("remote", port);

/**
 * Established TCP connections that a server on `port` holds, as the kernel sees them: also true of
 * a stopped (SIGSTOP) server, whose end of a connection its peer closed is CLOSE_WAIT, no longer counted.
 */
export const connectionsAt = (port: number): Promise<number> => established("local", port);

/**
 * Of `connectionsAt`, those holding bytes the server has not read: on a stopped server, each a
 * request sent to it since it stopped (an idle kept-alive connection holds none).
 */
export const unreadConnectionsAt = (port: number): Promise<number> => established("local", port, true);

/** File descriptors process `pid` holds now (-1 once it is gone): what a flood of connections spends. */
export const descriptorsOf = (pid: number): number => {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return -1;
  }
};
