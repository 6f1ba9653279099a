import type { NatsConnection } from "@manifold/bus";
import type { ArgumentValidator } from "./argumentValidator.js";
import type { CallObserver } from "./callObserver.js";
import type { GatewayCatalog } from "./catalog.js";
import type { InFlight } from "./inFlight.js";
import type { McpCall } from "./mcpCall.js";
import type { Access, HealthBoard } from "@manifold/domain";
import type { TaskHandles } from "./taskHandles.js";
import type { DelegatedCredentials } from "./vault/delegatedCredentials.js";

/** What serving a tool call needs, built once per gateway and shared by both lanes. */
export interface CallDeps {
  catalog: GatewayCatalog;
  nc: NatsConnection;
  validator: ArgumentValidator;
  observer: CallObserver;
  /** Seals and opens the task ids agents see (`taskHandles.ts`). */
  taskHandles: TaskHandles;
  /** The caller's own upstream credentials (vault tokens, token exchange) for upstreams that take them. */
  delegated: DelegatedCredentials;
  /** The caller's access now (undefined: none left), for what goes on after its request was admitted. */
  accessNow: (call: Pick<McpCall, "virtualServer" | "environment" | "principal">) => Access | undefined;
  /** Calls held per caller: running ones are counted until the connector answers. */
  inFlight: InFlight;
  /** Connector replicas as their health reports tell: whether one nobody answers for is away or gone (a task it holds), whether an upstream takes resource subscriptions. */
  health: Pick<HealthBoard, "away" | "subscribes">;
}
