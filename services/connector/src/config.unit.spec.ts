import { describe, expect, test } from "vitest";
import { loadConnectorConfig } from "./config.js";

describe("CONNECTOR_REPLICA_ID", () => {
  // A held call is resumed on a subject naming its replica, which the gateway takes up to 256
  // characters: a replica id of ~140 made every round on that replica refused (helper-153).
  test("is at most 96 characters, and the default fits", () => {
    expect(() => loadConnectorConfig({ CONNECTOR_REPLICA_ID: "r".repeat(97) })).toThrow(/CONNECTOR_REPLICA_ID/);
    expect(loadConnectorConfig({ CONNECTOR_REPLICA_ID: "r".repeat(96) }).CONNECTOR_REPLICA_ID).toHaveLength(96);
    expect(loadConnectorConfig({}).CONNECTOR_REPLICA_ID.length).toBeLessThanOrEqual(96);
  });
});
