export { connectBus } from "./connection.js";
export type { BusOptions } from "./connection.js";
export { EventStore, ensureRegistryStream } from "./eventStore.js";
export { followRegistry } from "./follower.js";
export type { EventSink, StreamFollower } from "./follower.js";
export { busRequest, replyWithError } from "./rpc.js";
export type { RequestOptions } from "./rpc.js";
export type { NatsConnection, Msg } from "@nats-io/transport-node";
export { ensureHealthStream, healthPublisher, followHealth } from "./health.js";
