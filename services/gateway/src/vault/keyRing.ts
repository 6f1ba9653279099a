import { ManifoldError, resolveSecrets, type ScopedSecrets } from "@manifold/contracts";
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/;

/**
 * The vault's AES-256-GCM keys: the first seals, every one opens (so a rotated-out key still
 * reads what it sealed until `rewrap` has moved every record to the new one). A sealed value is
 * `<key id>.<iv>.<ciphertext+tag>` (base64url), bound to its vault key by the additional
 * authenticated data, so a record moved to another consumer's or upstream's slot does not open.
 */
export class KeyRing {
  readonly current: string;
  readonly #keys: ReadonlyMap<string, Buffer>;

  private constructor(keys: Map<string, Buffer>) {
    this.#keys = keys;
    this.current = [...keys.keys()][0]!;
  }

  /**
   * `GATEWAY_VAULT_KEYS`: `id=reference` pairs, comma-separated, newest first; each reference
   * (`env:`/`file:`, under the operator's credential policy) holds 32 random bytes in base64.
   */
  static async load(spec: string, secrets: ScopedSecrets): Promise<KeyRing> {
    const refs: Record<string, string> = {};
    for (const [n, pair] of spec.split(",").map((p) => p.trim()).filter(Boolean).entries()) {
      const at = pair.indexOf("=");
      const id = pair.slice(0, at);
      // Only a well-formed id is named: an entry without one may be the key itself (a base64 key
      // alone has its `=` at the end), and its first 43 characters were quoted as the "id".
      if (at < 1 || !KEY_ID.test(id)) throw new ManifoldError("invalid_request", `GATEWAY_VAULT_KEYS: entry ${n + 1} is not id=reference with an id of letters, digits, _ and - (value withheld)`);
      if (id in refs) throw new ManifoldError("invalid_request", `GATEWAY_VAULT_KEYS: '${id}' is not a new key id`);
      refs[id] = pair.slice(at + 1);
    }
    if (Object.keys(refs).length === 0) throw new ManifoldError("invalid_request", "GATEWAY_VAULT_KEYS names no key");
    const values = await resolveSecrets(refs, secrets, "env");
    const keys = new Map<string, Buffer>();
    for (const [id, value] of Object.entries(refs).map(([id]) => [id, values[id]!] as const)) {
      const key = Buffer.from(value, "base64");
      if (key.length !== 32) throw new ManifoldError("invalid_request", `GATEWAY_VAULT_KEYS: key '${id}' is not 32 bytes in base64 (value withheld)`);
      keys.set(id, key);
    }
    return new KeyRing(keys);
  }

  /** How many keys there are (more than one: a rotation is under way). */
  get size(): number {
    return this.#keys.size;
  }

  seal(plaintext: string, boundTo: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.#keys.get(this.current)!, iv).setAAD(Buffer.from(boundTo));
    const sealed = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final(), cipher.getAuthTag()]);
    return `${this.current}.${iv.toString("base64url")}.${sealed.toString("base64url")}`;
  }

  /** The plaintext, or undefined when the value is not one of ours (unknown key, tampered, moved). */
  open(value: string, boundTo: string): string | undefined {
    const [id, iv, sealed] = value.split(".");
    const key = id === undefined ? undefined : this.#keys.get(id);
    if (!key || !iv || !sealed) return undefined;
    try {
      const bytes = Buffer.from(sealed, "base64url");
      const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(iv, "base64url")).setAAD(Buffer.from(boundTo));
      decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
      return Buffer.concat([decipher.update(bytes.subarray(0, bytes.length - TAG_BYTES)), decipher.final()]).toString("utf8");
    } catch {
      return undefined;
    }
  }

  /** The key id a sealed value names. */
  static keyOf(value: string): string {
    return value.slice(0, value.indexOf("."));
  }
}
