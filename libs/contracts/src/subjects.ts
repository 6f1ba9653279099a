/**
 * Every NATS subject and stream name Manifold uses. Event subjects (captured by the
 * registry stream) and request/reply subjects are disjoint on purpose: a core request
 * on a stream subject would be answered by a JetStream publish ack.
 */
export const RegistryStream = {
  name: "MANIFOLD_REGISTRY",
  subjects: "manifold.evt.>",
} as const;

export const Subjects = {
  upstreamEvents: (upstream: string) => `manifold.evt.upstream.${upstream}`,
  virtualServerEvents: (virtualServer: string) => `manifold.evt.vs.${virtualServer}`,
  upstreamCall: (upstream: string) => `manifold.rpc.upstream.${upstream}.call`,
  upstreamList: (upstream: string) => `manifold.rpc.upstream.${upstream}.list`,
} as const;

/** Replicas of one upstream's connector share its calls through this queue group. */
export const connectorQueue = (upstream: string) => `manifold-connector-${upstream}`;

/** Headers carried on bus requests and replies. */
export const BusHeader = {
  /** Set on a reply that carries an error body instead of a result. */
  errorCode: "Manifold-Error",
  /** Remaining time budget of the caller, so the connector never works past it. */
  timeoutMs: "Manifold-Timeout-Ms",
  virtualServer: "Manifold-Virtual-Server",
} as const;
