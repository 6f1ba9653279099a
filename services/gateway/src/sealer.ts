import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";

/** A sealed text longer than this was not made here (what is sealed is bounded): refused before any work. */
const MAX_SEALED = 2048;

/**
 * Text sealed (AES-256-GCM) for one purpose, under a key derived from the shared
 * `GATEWAY_REQUEST_STATE_KEY`: any replica opens it, nobody else can read or forge it. The seal is
 * bound (the cipher's associated data) to what the caller gives, so one sealed for another binding
 * does not open, and gets the same answer as a made-up one.
 */
export class Sealer {
  readonly #key: Buffer;
  readonly #prefix: string;

  /** `purpose` derives the key (one per use); `prefix` marks the format. */
  constructor(secret: Uint8Array, purpose: string, prefix: string) {
    this.#key = Buffer.from(hkdfSync("sha256", secret, "manifold", purpose, 32));
    this.#prefix = prefix;
  }

  seal(text: string, binding: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", this.#key, iv).setAAD(Buffer.from(binding));
    const body = Buffer.concat([cipher.update(text), cipher.final()]);
    return this.#prefix + Buffer.concat([iv, body, cipher.getAuthTag()]).toString("base64url");
  }

  /** The text, or undefined when `sealed` was not sealed here for this binding. */
  open(sealed: unknown, binding: string): string | undefined {
    if (typeof sealed !== "string" || sealed.length > MAX_SEALED || !sealed.startsWith(this.#prefix)) return undefined;
    const raw = Buffer.from(sealed.slice(this.#prefix.length), "base64url");
    if (raw.length < 12 + 16 + 2) return undefined;
    try {
      const decipher = createDecipheriv("aes-256-gcm", this.#key, raw.subarray(0, 12)).setAAD(Buffer.from(binding));
      decipher.setAuthTag(raw.subarray(raw.length - 16));
      return Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]).toString();
    } catch {
      return undefined;
    }
  }
}
