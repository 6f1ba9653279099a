import type { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { describe, expect, test } from "vitest";
import { ListNotices } from "./listNotices.js";

/** What the SDK server was asked to send, in order. */
const recordingServer = () => {
  const sent: string[] = [];
  const send = (what: string) => async () => void sent.push(what);
  const server = {
    sendToolListChanged: send("tools"),
    sendPromptListChanged: send("prompts"),
    sendResourceListChanged: send("resources"),
    sendResourceUpdated: async ({ uri }: { uri: string }) => void sent.push(`updated ${uri}`),
  } as unknown as Server;
  return { server, sent };
};

/** An update its caller may still hear of. */
const heard = () => true;

describe("ListNotices", () => {
  test("a change while the session has no stream here is told, once, when one opens", () => {
    const { server, sent } = recordingServer();
    const notices = new ListNotices(server);
    notices.tell(["tools"]);
    notices.tell(["tools", "items"]);
    expect(sent).toEqual([]);
    let close!: () => void;
    notices.opened(new Promise<void>((resolve) => (close = resolve)));
    expect(sent).toEqual(["tools", "prompts", "resources"]);
    // Told on the open stream at once, nothing kept.
    notices.tell(["tools"]);
    expect(sent).toEqual(["tools", "prompts", "resources", "tools"]);
    close();
  });

  test("told `again` (its consumer's groups changed, and the open stream may be cut before it is written): told now and on the next stream", () => {
    const { server, sent } = recordingServer();
    const notices = new ListNotices(server);
    notices.opened(new Promise<void>(() => undefined));
    notices.tell(["tools"], { again: true });
    expect(sent).toEqual(["tools"]);
    notices.opened(new Promise<void>(() => undefined));
    expect(sent).toEqual(["tools", "tools"]);
  });

  test("once its stream closed, changes are kept again for the next one", async () => {
    const { server, sent } = recordingServer();
    const notices = new ListNotices(server);
    let close!: () => void;
    notices.opened(new Promise<void>((resolve) => (close = resolve)));
    close();
    await new Promise((r) => setImmediate(r));
    notices.tell(["tools"]);
    expect(sent).toEqual([]);
    notices.opened(new Promise(() => undefined));
    expect(sent).toEqual(["tools"]);
  });

  test("a resource update while the session has no stream here is told when one opens, each URI once", () => {
    const { server, sent } = recordingServer();
    const notices = new ListNotices(server);
    notices.resourceUpdated("demo://a", heard);
    notices.resourceUpdated("demo://a", heard);
    notices.resourceUpdated("demo://b", heard);
    expect(sent).toEqual([]);
    notices.opened(new Promise(() => undefined));
    expect(sent).toEqual(["updated demo://a", "updated demo://b"]);
    notices.resourceUpdated("demo://c", heard);
    expect(sent.at(-1)).toBe("updated demo://c");
  });

  test("what is kept for a session without a stream is bounded by what it may subscribe to", () => {
    const { server, sent } = recordingServer();
    const notices = new ListNotices(server);
    for (let i = 0; i < 1_000; i++) notices.resourceUpdated(`demo://${i}`, heard);
    notices.opened(new Promise(() => undefined));
    expect(sent).toHaveLength(100);
  });

  test("a kept resource update is told only if its caller may still hear of it when the stream opens", () => {
    const { server, sent } = recordingServer();
    const notices = new ListNotices(server);
    let granted = true;
    notices.resourceUpdated("demo://a", () => granted);
    notices.resourceUpdated("demo://b", heard);
    // The grant narrowed between the update and the stream.
    granted = false;
    notices.opened(new Promise(() => undefined));
    expect(sent).toEqual(["updated demo://b"]);
  });
});
