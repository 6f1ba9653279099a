import type { Transport } from "@modelcontextprotocol/client";

/**
 * Keeps an upstream's notifications ahead of the response that follows them. The 2.4.0 SDK
 * client runs notification handlers one microtask after a message arrives but settles a
 * response at once, dropping the request's progress handler: a progress (or log) notification
 * sent just before the result, read in the same chunk, then finds no handler and is lost
 * (measured here over stdio with server-everything's `trigger-long-running-operation`, 2 steps:
 * the last step was lost in 8 of 10 calls). Delivering responses one microtask later puts them
 * behind the notification handlers already queued, in the order the upstream sent them.
 * Call after `client.connect`, which installs the handler wrapped here.
 */
export function keepNotificationsFirst(transport: Transport): void {
  const deliver = transport.onmessage;
  if (!deliver) return;
  transport.onmessage = (message, extra) => {
    if ("method" in message) deliver(message, extra);
    else void Promise.resolve().then(() => deliver(message, extra));
  };
}
