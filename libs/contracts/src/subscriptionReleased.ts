import { z } from "zod";

/**
 * A gateway's listen stream closed: the upstream resources it subscribed to (the upstream's own
 * URIs, at most 100 a stream) are no longer held by it (`holder`, the subscribe's
 * `BusHeader.subscriber`) for its caller (`BusHeader.caller`). Every connector replica serving the
 * upstream lets go of what that stream held there, and of a URI no other holder keeps, upstream.
 * Published on `Subjects.subscriptionReleased(<upstream>)`.
 */
export const SubscriptionReleased = z.strictObject({
  caller: z.string().max(64),
  holder: z.string().max(64),
  uris: z.array(z.string().max(4_096)).max(100),
});
export type SubscriptionReleased = z.infer<typeof SubscriptionReleased>;
