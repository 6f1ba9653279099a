import { Subjects, type EventType, type RegistryEvent } from "@manifold/contracts";

/** `consumer` of `consumer.created`: the table below must have exactly these kinds. */
type KindOfEventType<T extends EventType> = T extends `${infer K}.${string}` ? K : never;

/**
 * Every kind of object the registry stores, in one table: the stream subject that holds one
 * object's events. Each event type starts with its kind (`consumer.created`), so an event's
 * kind needs no table of its own; adding a kind is one entry here (the compiler finds the rest).
 */
export const AggregateKinds = {
  upstream: { subject: Subjects.upstreamEvents },
  "virtual-server": { subject: Subjects.virtualServerEvents },
  consumer: { subject: Subjects.consumerEvents },
  "identity-provider": { subject: Subjects.identityProviderEvents },
  environment: { subject: Subjects.environmentEvents },
} as const satisfies Record<KindOfEventType<EventType>, { subject: (name: string) => string }>;
export type AggregateKind = keyof typeof AggregateKinds;
export type Aggregate = { kind: AggregateKind; name: string };

/** The stream subject holding one object's events; its last sequence is the object's version. */
export const subjectOf = ({ kind, name }: Aggregate) => AggregateKinds[kind].subject(name);

/** The object an event belongs to. */
export const aggregateOfEvent = (event: RegistryEvent): Aggregate => ({
  kind: event.type.slice(0, event.type.indexOf(".")) as AggregateKind,
  name: event.data.name,
});
