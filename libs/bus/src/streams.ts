import type { Logger } from "@manifold/telemetry";
import { JetStreamApiError, type JetStreamManager, type StreamInfo } from "@nats-io/jetstream";

const STREAM_NOT_FOUND = 10059;
const RETRY_MS = 250;

/**
 * A stream's info once it exists. Only its writers may create a stream (the registry its log,
 * connectors the health stream): a node that only reads one waits for it instead.
 */
export async function waitForStream(jsm: JetStreamManager, name: string, logger: Logger): Promise<StreamInfo> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await jsm.streams.info(name);
    } catch (error) {
      if (!(error instanceof JetStreamApiError && error.code === STREAM_NOT_FOUND)) throw error;
      if (attempt === 0) logger.info({ stream: name }, "waiting for the stream to be created by its writer");
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  }
}
