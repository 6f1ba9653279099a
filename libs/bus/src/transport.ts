import { NatsConnectionImpl, setTransportFactory, type ConnectionOptions, type NatsConnection } from "@nats-io/transport-node";
// Not re-exported by the package's entry; the connect() below is the package's own, with this transport.
import { NodeTransport, nodeResolveHost } from "@nats-io/transport-node/lib/node_transport.js";

/**
 * nats.js flushes its outbound buffer once per microtask checkpoint, that is once per I/O
 * event: under load the gateway made one write syscall per request and per audit record, the
 * largest single cost in its profile. Corking the socket until the end of the event-loop turn
 * sends everything published during that turn in one writev. Nothing waits longer than the
 * turn that published it, and the stream keeps the order and the write callbacks.
 */
class CoalescingTransport extends NodeTransport {
  #corked = false;
  /** Set by `flushNow` for the one `send` it triggers. */
  immediate = false;

  override send(frame: Uint8Array): void {
    if (this.immediate) {
      super.send(frame);
      // Whatever the turn corked before goes out with it, in order.
      if (this.#corked) this.#uncork();
      return;
    }
    if (!this.#corked && this.socket) {
      this.#corked = true;
      this.socket.cork();
      setImmediate(this.#uncork);
    }
    super.send(frame);
  }

  readonly #uncork = () => {
    if (!this.#corked) return;
    this.#corked = false;
    this.socket?.uncork();
  };
}

/** The package's `connect`, with writes coalesced per event-loop turn. */
export function connectCoalescing(options: ConnectionOptions): Promise<NatsConnection> {
  setTransportFactory({ factory: () => new CoalescingTransport(), dnsResolveFn: nodeResolveHost });
  return NatsConnectionImpl.connect(options);
}

interface Internals {
  protocol?: { transport?: unknown; flushPending(): void };
}

/**
 * Writes what `nc` has buffered now rather than at the end of the turn. For a sender that knows
 * its message is the only one in flight (one client, nothing queued): at the end of the turn it
 * would have gone out alone anyway, after the bookkeeping that follows it (measured at one client:
 * 45 µs in the gateway, ~130 µs in the connector). Under load senders do not call it, and their
 * messages keep coalescing per turn.
 */
export function flushNow(nc: NatsConnection): void {
  const protocol = (nc as unknown as Internals).protocol;
  const transport = protocol?.transport;
  if (!(transport instanceof CoalescingTransport)) return;
  transport.immediate = true;
  try {
    protocol!.flushPending();
  } finally {
    transport.immediate = false;
  }
}
