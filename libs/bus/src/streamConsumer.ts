import type { Logger } from "@manifold/telemetry";
import { jetstream, jetstreamManager, type ConsumerMessages, type JsMsg, type OrderedConsumerOptions } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";

/**
 * Pull requests are renewed this often and the server heartbeats every half of it, so a consumer
 * whose node died is noticed after two missed heartbeats: about this long. Costs one pull per
 * interval while the stream is quiet.
 */
const PULL_EXPIRES_MS = 2_000;
const REOPEN_DELAY_MS = 250;

export interface StreamConsumer {
  /** Ends once stopped; a message handler that throws ends it too. */
  readonly done: Promise<void>;
  stop(): Promise<void>;
}

/**
 * Feeds every message of `stream` to `onMessage` through an ordered consumer that outlives the
 * loss of the cluster node holding it. nats.js (3.4) recreates an ordered consumer after its own
 * connection drops, but when only the consumer's node dies it reports missed heartbeats for ever
 * and delivers nothing more, even once that node is back. Here missed heartbeats close the
 * consumer and a new one starts where `from()` says (for a log: after the last applied sequence).
 */
export async function consumeStream(
  nc: NatsConnection,
  stream: string,
  from: () => Partial<OrderedConsumerOptions>,
  onMessage: (message: JsMsg) => void,
  logger: Logger,
): Promise<StreamConsumer> {
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc, { timeout: REOPEN_DELAY_MS * 4, checkAPI: false });
  let stopped = false;
  const open = async (): Promise<ConsumerMessages> => {
    const messages = await (await js.consumers.get(stream, from())).consume({ expires: PULL_EXPIRES_MS });
    void (async () => {
      for await (const status of messages.status()) {
        if (status.type === "heartbeats_missed") {
          logger.warn({ stream }, "stream consumer lost (its node is gone?); starting a new one");
          await messages.close();
          return;
        }
      }
    })();
    return messages;
  };
  let messages = await open();
  const done = (async () => {
    while (!stopped) {
      for await (const message of messages) onMessage(message);
      while (!stopped) {
        try {
          // A consumer can only be created once the stream has a leader again, and the stream's
          // info is answered by that leader: asking it is cheap, while nats.js backs off up to
          // 5 s between failed creations, which the projection (and every command) would wait out.
          await jsm.streams.info(stream);
          messages = await open();
          break;
        } catch (err) {
          logger.debug({ err, stream }, "cannot start a stream consumer yet");
          await new Promise((r) => setTimeout(r, REOPEN_DELAY_MS));
        }
      }
    }
  })();
  return {
    done,
    async stop() {
      stopped = true;
      await messages.close();
      await done.catch(() => undefined);
    },
  };
}
