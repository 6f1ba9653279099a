import { credentialFingerprint, KvBucket, Subjects, type CredentialDropped } from "@manifold/contracts";
import { bucketStream, busUnavailable, type NatsConnection } from "@manifold/bus";
import type { Logger } from "@manifold/telemetry";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { KV, KvEntry } from "@nats-io/kv";
import { openBucket } from "../openBucket.js";
import { createHash } from "node:crypto";
import { KeyRing } from "./keyRing.js";

const BUS_TIMEOUT_MS = 5_000;
/** Where the vault's writes are published: `$KV.<bucket>.<key>`. */
const VAULT_SUBJECT_PREFIX = `$KV.${KvBucket.vault}.`;

/** One consumer's tokens for one upstream, as the vault keeps them (sealed). */
export interface StoredTokens {
  accessToken: string;
  refreshToken?: string;
  /** Epoch ms; absent when the authorization server gave no `expires_in`. */
  expiresAt?: number;
  scope?: string;
  /** The authorization server that issued them. */
  issuer: string;
  /**
   * The upstream URL they were obtained for: they go to that server only. An upstream re-pointed
   * since (or a record from before this field) holds tokens for another server: they are dropped.
   */
  resource?: string;
  /**
   * Which consumer of that name connected them (its `created`): one deleted and created again under
   * the name is another, and never uses them (a record from before this field is not used either).
   */
  consumerCreated?: number;
  connectedAt: number;
  /** Epoch ms until which one replica holds the right to refresh them (`claimRefresh`). */
  refreshingUntil?: number;
}

/**
 * Who refreshes a record: this replica (it holds the lease, at `revision`), another one (wait), or
 * no one (`as-is`: fresh, or without a refresh token, the tokens are used or dropped as they are).
 */
export type RefreshClaim =
  | { readonly state: "leased"; readonly tokens: StoredTokens; readonly revision: number }
  | { readonly state: "busy"; readonly tokens: StoredTokens }
  | { readonly state: "as-is"; readonly tokens: StoredTokens };

/** An authorization in progress: what the callback needs, found by the hash of its `state`. */
export interface PendingFlow {
  consumer: string;
  /**
   * Which consumer of that name (its `created`): a consumer deleted and created again under it is
   * another, and neither is handed the other's link (a flow from before this field matches none).
   */
  consumerCreated?: number;
  upstream: string;
  verifier: string;
  /**
   * SHA-256 (hex) of the secret the confirming browser holds in a cookie: set once, when the
   * user confirms the connect page; the callback must come from that browser.
   */
  binding?: string;
  /** The authorization server the confirming browser was sent to (set with `binding`): the code is redeemed there only. */
  issuer?: string;
}

const tokenKey = (consumer: string, upstream: string) => `t.${upstream}.${consumer}`;
const flowKey = (state: string) => `f.${createHash("sha256").update(state).digest("hex")}`;
/** Where a consumer's pending authorization of an upstream is found (sealed: it holds the flow's `state`). */
const pendingKey = (consumer: string, upstream: string) => `p.${createHash("sha256").update(`${upstream}\n${consumer}`).digest("hex")}`;

/**
 * Consumers' upstream tokens, in the JetStream KV bucket `manifold-vault`, each sealed with
 * AES-256-GCM (`KeyRing`) and bound to its slot; pending authorizations in `manifold-oauth-flows`,
 * whose entries count as gone once older than `flowTtlMs`. Only gateways may read or write either bucket (bus
 * permissions). Every replica watches the vault: a token replaced, disconnected or revoked on
 * one replica is dropped from every replica's memory at once; the replica that dropped it also
 * tells the connectors (`Subjects.credentialDropped`), which close the upstream sessions opened
 * with it.
 */
export class TokenVault {
  readonly #nc: NatsConnection;
  readonly #tokens: KV;
  readonly #flows: KV;
  readonly #ring: KeyRing;
  readonly #opened = new Map<string, StoredTokens>();
  /**
   * Reads under way, each with a ticket a write heard meanwhile takes away: what a read brings back
   * is kept only if no replica wrote the record since it started. A removal heard between the read's
   * answer and its keeping was forgotten before the record was kept, and the removed token stayed in
   * that replica's memory for good (63 of 100 rounds: `test/e2e/vaultReplicaCache.e2e.spec.ts`).
   */
  readonly #reading = new Map<string, object>();
  readonly #jsm: JetStreamManager;
  #unwatch: (() => void) | undefined;

  /** How long a pending flow lives (judged here by its write time: `#liveFlow`). */
  readonly #flowTtlMs: number;

  private constructor(nc: NatsConnection, tokens: KV, flows: KV, ring: KeyRing, flowTtlMs: number, jsm: JetStreamManager) {
    this.#flowTtlMs = flowTtlMs;
    this.#jsm = jsm;
    this.#nc = nc;
    this.#tokens = tokens;
    this.#flows = flows;
    this.#ring = ring;
  }

  static async open(nc: NatsConnection, ring: KeyRing, flowTtlMs: number, logger: Logger): Promise<TokenVault> {
    const [tokens, flows, jsm] = await Promise.all([
      openBucket(nc, KvBucket.vault, logger, BUS_TIMEOUT_MS),
      openBucket(nc, KvBucket.oauthFlows, logger, BUS_TIMEOUT_MS),
      jetstreamManager(nc, { timeout: BUS_TIMEOUT_MS }),
    ]);
    const vault = new TokenVault(nc, tokens, flows, ring, flowTtlMs, jsm);
    // Every write to the vault, by any replica, heard on its subject (a gateway may create no
    // consumer on the vault: busPermissions.ts). What a disconnection may have hidden is forgotten.
    const changes = nc.subscribe(`${VAULT_SUBJECT_PREFIX}>`, { callback: (_error, msg) => vault.#forget(msg.subject.slice(VAULT_SUBJECT_PREFIX.length)) });
    vault.#unwatch = () => changes.unsubscribe();
    void (async () => {
      for await (const status of nc.status()) {
        if (status.type === "disconnect" || status.type === "reconnect") {
          vault.#opened.clear();
          vault.#reading.clear();
        }
      }
    })().catch(() => undefined);
    await nc.flush();
    return vault;
  }

  async get(consumer: string, upstream: string): Promise<StoredTokens | undefined> {
    const key = tokenKey(consumer, upstream);
    const known = this.#opened.get(key);
    if (known) return known;
    const ticket = {};
    this.#reading.set(key, ticket);
    const plain = this.#open(await bus("read from the token vault", this.#tokens.get(key)), key);
    const current = this.#reading.get(key) === ticket;
    if (current) this.#reading.delete(key);
    if (plain === undefined) return undefined;
    const tokens = JSON.parse(plain) as StoredTokens;
    if (current) this.#opened.set(key, tokens);
    return tokens;
  }

  /** A record was written (by any replica): what this one kept of it, or is reading of it, is not kept. */
  #forget(key: string): void {
    this.#opened.delete(key);
    this.#reading.delete(key);
  }

  async put(consumer: string, upstream: string, tokens: StoredTokens): Promise<void> {
    const key = tokenKey(consumer, upstream);
    const previous = await this.get(consumer, upstream);
    await bus("write to the token vault", this.#tokens.put(key, this.#ring.seal(JSON.stringify(tokens), key)));
    // Not kept: another replica may have removed it since (see `#reading`); the next `get` reads it.
    this.#forget(key);
    if (previous && previous.accessToken !== tokens.accessToken) this.#dropped(upstream, previous.accessToken);
  }

  /**
   * The right to refresh a record, across replicas: a refresh token an authorization server rotates
   * may be spent once (presenting it twice revokes the whole grant), so one replica refreshes while
   * the others wait for its result. The lease is written into the record with compare-and-set and
   * lasts `leaseMs`, so a replica that dies holding it delays the others by that much at most.
   * Undefined when the record is gone.
   */
  async claimRefresh(consumer: string, upstream: string, leaseMs: number, stale: (tokens: StoredTokens) => boolean): Promise<RefreshClaim | undefined> {
    const key = tokenKey(consumer, upstream);
    const entry = await this.#tokens.get(key);
    const plain = this.#open(entry, key);
    if (!entry || plain === undefined) return undefined;
    const { refreshingUntil, ...tokens } = JSON.parse(plain) as StoredTokens;
    if (!stale(tokens) || !tokens.refreshToken) return { state: "as-is", tokens };
    if (refreshingUntil !== undefined && refreshingUntil > Date.now()) return { state: "busy", tokens };
    const leased = JSON.stringify({ ...tokens, refreshingUntil: Date.now() + leaseMs });
    // Lost to another replica's lease or fresh tokens since the read: wait and read again.
    const revision = await this.#tokens.update(key, this.#ring.seal(leased, key), entry.revision).catch(() => undefined);
    return revision === undefined ? { state: "busy", tokens } : { state: "leased", tokens, revision };
  }

  /**
   * Ends a lease (`claimRefresh`): writes `tokens` (fresh ones, or the old ones given back), or
   * removes the record (undefined), only if the record is still the leased one; connectors drop
   * the sessions opened with the replaced access token. False when it is
   * not: the lease ran out and another replica has written since, and its record stands.
   */
  async settleRefresh(consumer: string, upstream: string, lease: Extract<RefreshClaim, { state: "leased" }>, tokens: StoredTokens | undefined): Promise<boolean> {
    const key = tokenKey(consumer, upstream);
    const { revision, tokens: previous } = lease;
    const settled = await (tokens ? this.#tokens.update(key, this.#ring.seal(JSON.stringify(tokens), key), revision) : this.#tokens.purge(key, { previousSeq: revision })).then(
      () => true,
      () => false,
    );
    if (!settled) return false;
    // Not kept, as in `put`: a removal on another replica may already follow this write.
    this.#forget(key);
    if (previous.accessToken !== tokens?.accessToken) this.#dropped(upstream, previous.accessToken);
    return true;
  }

  /** Removes the tokens and says what they were (to revoke them at the authorization server). */
  async remove(consumer: string, upstream: string): Promise<StoredTokens | undefined> {
    const tokens = await this.get(consumer, upstream);
    const key = tokenKey(consumer, upstream);
    this.#opened.delete(key);
    if (tokens) {
      await bus("write to the token vault", this.#tokens.purge(key));
      this.#dropped(upstream, tokens.accessToken);
    }
    return tokens;
  }

  /** Connectors close the sessions opened with a token no longer in the vault (never the token itself on the bus). */
  #dropped(upstream: string, accessToken: string): void {
    const message: CredentialDropped = { fingerprint: credentialFingerprint(accessToken) };
    try {
      this.#nc.publish(Subjects.credentialDropped(upstream), JSON.stringify(message));
    } catch {
      // The bus is closing: the connectors' sessions then end when idle, as before.
    }
  }

  /** The upstreams a consumer has connected, with when and until when. */
  async connections(consumer: string): Promise<{ upstream: string; connectedAt: string; expiresAt?: string; scope?: string }[]> {
    const found = [];
    for (const key of await this.#keys(`t.*.${consumer}`)) {
      const upstream = key.split(".")[1]!;
      const tokens = await this.get(consumer, upstream);
      if (!tokens) continue;
      found.push({
        upstream,
        connectedAt: new Date(tokens.connectedAt).toISOString(),
        ...(tokens.expiresAt ? { expiresAt: new Date(tokens.expiresAt).toISOString() } : {}),
        ...(tokens.scope ? { scope: tokens.scope } : {}),
      });
    }
    return found.sort((a, b) => a.upstream.localeCompare(b.upstream));
  }

  /**
   * Key rotation: re-seals every record that an older key sealed with the current one, so the
   * older key can then be removed from `GATEWAY_VAULT_KEYS`. Counts what it moved and what it
   * could not open (sealed by a key no longer configured: those stay, useless, until replaced).
   */
  async rewrap(): Promise<{ rewrapped: number; unreadable: number }> {
    let rewrapped = 0;
    let unreadable = 0;
    for (const key of await this.#keys(">")) {
      const entry = await this.#tokens.get(key);
      if (!entry || entry.operation !== "PUT" || KeyRing.keyOf(entry.string()) === this.#ring.current) continue;
      const plain = this.#ring.open(entry.string(), key);
      if (plain === undefined) {
        unreadable++;
        continue;
      }
      // Only if no one changed it meanwhile: a fresher token wins over the re-sealed old one.
      const moved = await this.#tokens.update(key, this.#ring.seal(plain, key), entry.revision).then(
        () => true,
        () => false,
      );
      if (moved) rewrapped++;
    }
    return { rewrapped, unreadable };
  }

  /** The raw sealed record (tests look at what is at rest). */
  async sealed(consumer: string, upstream: string): Promise<string | undefined> {
    const entry = await this.#tokens.get(tokenKey(consumer, upstream));
    return entry?.operation === "PUT" ? entry.string() : undefined;
  }

  /**
   * The `state` of the consumer's pending authorization of `upstream`: the one already started,
   * not yet confirmed in a browser and with half its life left, or a new one (`fresh`). One per consumer and upstream
   * however often their calls ask: a consumer calling in a loop wrote one flow per call (640 a
   * second, each kept for the flow TTL).
   */
  async pendingFlow(consumer: string, upstream: string, consumerCreated: number, fresh: () => { state: string; flow: PendingFlow }): Promise<string> {
    const pointer = pendingKey(consumer, upstream);
    const plain = this.#open(await this.#liveFlow(pointer), pointer);
    const known = plain === undefined ? undefined : (JSON.parse(plain) as { state: string; at: number });
    // Handed out again only while half its life is left, so a link is never given just before it expires.
    if (known !== undefined && Date.now() - known.at < this.#flowTtlMs / 2) {
      const flow = await this.peekFlow(known.state);
      if (flow !== undefined && flow.binding === undefined && flow.consumerCreated === consumerCreated) return known.state;
    }
    const { state, flow } = fresh();
    await this.startFlow(state, flow);
    await this.#flows.put(pointer, this.#ring.seal(JSON.stringify({ state, at: Date.now() }), pointer));
    return state;
  }

  async startFlow(state: string, flow: PendingFlow): Promise<void> {
    const key = flowKey(state);
    await this.#flows.put(key, this.#ring.seal(JSON.stringify(flow), key));
  }

  /** The flow a connect link names, left in place for the callback. */
  async peekFlow(state: string): Promise<PendingFlow | undefined> {
    const key = flowKey(state);
    const plain = this.#open(await this.#liveFlow(key), key);
    return plain === undefined ? undefined : (JSON.parse(plain) as PendingFlow);
  }

  /** Binds the flow to the browser that confirmed it and the server it sends it to, once: false when it was bound already (or is gone). */
  async bindFlow(state: string, binding: string, issuer: string): Promise<boolean> {
    const key = flowKey(state);
    const entry = await this.#liveFlow(key);
    const plain = this.#open(entry, key);
    if (!entry || plain === undefined) return false;
    const flow = JSON.parse(plain) as PendingFlow;
    if (flow.binding !== undefined) return false;
    return this.#flows.update(key, this.#ring.seal(JSON.stringify({ ...flow, binding, issuer }), key), entry.revision).then(
      () => true,
      () => false,
    );
  }

  /** The flow a callback's `state` names, at most once: it is deleted as it is taken. */
  async takeFlow(state: string): Promise<PendingFlow | undefined> {
    const key = flowKey(state);
    const entry = await this.#liveFlow(key);
    if (!entry || entry.operation !== "PUT") return undefined;
    const taken = await this.#flows.delete(key, { previousSeq: entry.revision }).then(
      () => true,
      () => false,
    );
    const plain = taken ? this.#ring.open(entry.string(), key) : undefined;
    return plain === undefined ? undefined : (JSON.parse(plain) as PendingFlow);
  }

  /** The vault's keys matching `filter`, deleted ones included, from its stream's subjects (no consumer: busPermissions.ts). */
  async #keys(filter: string): Promise<string[]> {
    const info = await bus("listing of the token vault", this.#jsm.streams.info(bucketStream(KvBucket.vault), { subjects_filter: `${VAULT_SUBJECT_PREFIX}${filter}` }));
    return Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(VAULT_SUBJECT_PREFIX.length));
  }

  /**
   * A flows entry written within this gateway's flow TTL, else none: the bucket, made by the
   * registry, keeps entries up to MAX_OAUTH_FLOW_TTL_S, not this gateway's GATEWAY_OAUTH_FLOW_TTL_S.
   */
  async #liveFlow(key: string): Promise<KvEntry | null> {
    const entry = await this.#flows.get(key);
    return entry && Date.now() - entry.created.getTime() <= this.#flowTtlMs ? entry : null;
  }

  /** The plain text of a sealed entry: undefined when there is none (deleted, purged) or it does not open under this slot's key. */
  #open(entry: KvEntry | null, key: string): string | undefined {
    return entry?.operation === "PUT" ? this.#ring.open(entry.string(), key) : undefined;
  }

  close(): void {
    this.#unwatch?.();
  }
}

/**
 * A vault read or write the bus could not carry (NATS down or recovering) is `bus_unavailable`, as
 * every bus operation's failure is, so callers and the vault's routes answer it as the retryable
 * outage it is, not as an internal error.
 */
const bus = <T>(what: string, operation: Promise<T>): Promise<T> => operation.catch((error: unknown) => Promise.reject(busUnavailable(what, error)));
