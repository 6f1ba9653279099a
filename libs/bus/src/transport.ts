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

  override send(frame: Uint8Array): void {
    if (!this.#corked && this.socket) {
      this.#corked = true;
      this.socket.cork();
      setImmediate(this.#uncork);
    }
    super.send(frame);
  }

  readonly #uncork = () => {
    this.#corked = false;
    this.socket?.uncork();
  };
}

/** The package's `connect`, with writes coalesced per event-loop turn. */
export function connectCoalescing(options: ConnectionOptions): Promise<NatsConnection> {
  setTransportFactory({ factory: () => new CoalescingTransport(), dnsResolveFn: nodeResolveHost });
  return NatsConnectionImpl.connect(options);
}
