import type { AggregateKind } from "./aggregates.js";
import type {
  AuditSettings,
  DiscoveredPrompt,
  DiscoveredResource,
  DiscoveredResourceTemplate,
  DiscoveredTool,
  SelectedPrompt,
  SelectedResource,
  SelectedResourceTemplate,
  DriftPolicy,
  EnvironmentPin,
  ResolvedGrant,
  IdentityProvider,
  InteractionSettings,
  Naming,
  SelectedTool,
  ServerInfo,
  StoredKey,
  UpstreamOptions,
  UpstreamTransport,
} from "@manifold/contracts";

export interface UpstreamState {
  readonly name: string;
  readonly description?: string;
  readonly transport: UpstreamTransport;
  readonly options: UpstreamOptions;
  /** Stream sequence of the aggregate's last event: the version checked on append. */
  readonly version: number;
  /**
   * Stream sequence of its registration (or last change of settings): part of `registrationHash`, so
   * an upstream removed and registered again with the same settings is another registration.
   */
  readonly registeredAt?: number;
  readonly serverInfo?: ServerInfo;
  /** Last observed definitions, by original tool name. */
  readonly tools: ReadonlyMap<string, DiscoveredTool>;
  /** Last observed prompts (by name), resources (by URI) and resource templates (by URI template). */
  readonly prompts: ReadonlyMap<string, DiscoveredPrompt>;
  readonly resources: ReadonlyMap<string, DiscoveredResource>;
  readonly resourceTemplates: ReadonlyMap<string, DiscoveredResourceTemplate>;
  /** When its last recorded list changes were appended (ms), oldest first (`listChanges.ts`). */
  readonly listChangedAt?: readonly number[];
}

export interface VirtualServerState {
  readonly name: string;
  readonly description?: string;
  readonly version: number;
  /**
   * The sequence of the event that created it: a virtual server deleted and created again under
   * its name is another one, and what agents are bound to through it (2025 sessions) binds to this.
   */
  readonly created: number;
  /** Selected tools by exposed name, each with its pinned definition. */
  readonly tools: ReadonlyMap<string, SelectedTool>;
  /**
   * Selected prompts by exposed name (one namespace with the tools), resources and templates by
   * exposed URI (template): the default environment's pins, promoted like tools (`environmentItems`).
   */
  readonly prompts: ReadonlyMap<string, SelectedPrompt>;
  readonly resources: ReadonlyMap<string, SelectedResource>;
  readonly resourceTemplates: ReadonlyMap<string, SelectedResourceTemplate>;
  /** Who may use it, by grant id; denied tools, prompts and resources by identity. */
  readonly grants: ReadonlyMap<string, ResolvedGrant>;
  /** Whether audit records keep values; absent means they never do. */
  readonly audit?: AuditSettings;
  /** `pinned`: changes wait for review; `auto-compatible`: compatible ones are adopted at once. */
  readonly driftPolicy: DriftPolicy;
  /** Server-to-client requests relayed to its agents; absent: `InteractionSettings`' defaults. */
  readonly interactions?: InteractionSettings;
  /** Drift reviewed and rejected, per environment: exposed name → the upstream hash that was rejected (null: the tool was gone). */
  readonly rejected: ReadonlyMap<string, ReadonlyMap<string, string | null>>;
  readonly naming: Naming;
  /** Old exposed names that still work after a rename: old → current. */
  readonly deprecatedAliases: ReadonlyMap<string, string>;
  /** Pins promoted into named environments: environment → exposed name → pin. */
  readonly environments: ReadonlyMap<string, ReadonlyMap<string, EnvironmentPin>>;
  /**
   * Prompts, resources and templates promoted into named environments (keyed as above). An
   * environment promoted before promotion covered them has no entry: it serves the selection's.
   */
  readonly environmentItems: ReadonlyMap<string, Pick<VirtualServerState, "prompts" | "resources" | "resourceTemplates">>;
}

export interface EnvironmentState {
  readonly name: string;
  readonly version: number;
  /** The sequence of the event that created it: one deleted and set again under its name is another (2025 sessions bind to this). */
  readonly created: number;
  /** Logical upstream name → concrete upstream in this environment (unbound names map to themselves). */
  readonly bindings: ReadonlyMap<string, string>;
}

export interface ConsumerState {
  readonly name: string;
  readonly description?: string;
  readonly groups: readonly string[];
  /** Identity providers whose tokens may act as this consumer (none unless it opted in). */
  readonly identityProviders: readonly string[];
  readonly version: number;
  /**
   * The sequence of the event that created it: a consumer deleted and created again under its
   * name is another consumer, and what callers are bound to (sessions, tasks, rounds, budgets) binds to this.
   */
  readonly created: number;
  readonly keys: ReadonlyMap<string, StoredKey>;
}

export type IdentityProviderState = IdentityProvider & { readonly version: number };

/** What deciders may read of the whole catalog; the projection implements it. */
export interface CatalogView {
  /** How many objects of the kind exist (`RegistryLimits`). */
  count(kind: AggregateKind): number;
  upstream(name: string): UpstreamState | undefined;
  virtualServer(name: string): VirtualServerState | undefined;
  virtualServers(): Iterable<VirtualServerState>;
  usersOf(upstream: string): { virtualServers: string[]; environments: string[] };
  consumer(name: string): ConsumerState | undefined;
  consumers(): Iterable<ConsumerState>;
  identityProvider(name: string): IdentityProviderState | undefined;
  identityProviders(): Iterable<IdentityProviderState>;
  environment(name: string): EnvironmentState | undefined;
}
