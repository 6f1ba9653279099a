import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";

/** Where a task lives: the upstream, the connector replica whose upstream session holds it, the upstream's own id. */
export interface TaskHome {
  readonly upstream: string;
  readonly replica: string;
  readonly taskId: string;
}

const VERSION = "mt1.";
/** A handle longer than this was not made here (ids are bounded on the bus): refused before any work. */
const MAX_HANDLE = 2048;

/**
 * The task ids agents see: the task's home, sealed (AES-256-GCM) under a key derived from the
 * shared `GATEWAY_REQUEST_STATE_KEY`, so any replica can open one and nobody can read or forge
 * one. The seal is bound to the caller, the virtual server and the environment (the binding is
 * the cipher's associated data): another caller's handle does not open, and gets the same answer
 * as a made-up one.
 */
export class TaskHandles {
  readonly #key: Buffer;

  constructor(secret: Uint8Array) {
    this.#key = Buffer.from(hkdfSync("sha256", secret, "manifold", "manifold task handle v1", 32));
  }

  seal(home: TaskHome, binding: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", this.#key, iv).setAAD(Buffer.from(binding));
    const body = Buffer.concat([cipher.update(JSON.stringify({ u: home.upstream, r: home.replica, t: home.taskId })), cipher.final()]);
    return VERSION + Buffer.concat([iv, body, cipher.getAuthTag()]).toString("base64url");
  }

  /** The task's home, or undefined when the handle is not one this caller holds here. */
  open(handle: unknown, binding: string): TaskHome | undefined {
    if (typeof handle !== "string" || handle.length > MAX_HANDLE || !handle.startsWith(VERSION)) return undefined;
    const raw = Buffer.from(handle.slice(VERSION.length), "base64url");
    if (raw.length < 12 + 16 + 2) return undefined;
    try {
      const decipher = createDecipheriv("aes-256-gcm", this.#key, raw.subarray(0, 12)).setAAD(Buffer.from(binding));
      decipher.setAuthTag(raw.subarray(raw.length - 16));
      const text = Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]).toString();
      const { u, r, t } = JSON.parse(text) as { u?: unknown; r?: unknown; t?: unknown };
      return typeof u === "string" && typeof r === "string" && typeof t === "string" ? { upstream: u, replica: r, taskId: t } : undefined;
    } catch {
      return undefined;
    }
  }
}
