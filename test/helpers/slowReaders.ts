import type { Server } from "node:http";
import { connect, type Socket } from "node:net";

type HttpSocket = Socket & { _httpMessage?: { writableLength: number } | null };

/** What `server` holds to write, over every connection it accepts from now on (an answer's length counts its socket's). */
export function writesHeld(server: Server): () => number {
  const accepted = new Set<HttpSocket>();
  server.on("connection", (socket: HttpSocket) => {
    accepted.add(socket);
    socket.once("close", () => accepted.delete(socket));
  });
  return () => [...accepted].reduce((sum, socket) => sum + (socket._httpMessage?.writableLength ?? socket.writableLength), 0);
}

/** A POST's bytes as a raw HTTP/1.1 client sends them. */
export const rawPost = (url: URL, headers: Record<string, string>, body: string) =>
  `POST ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\n${Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join("")}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

/** The status of an answer from its first bytes. */
export const statusOf = (first: string) => first.slice(9, 12);

/**
 * Clients that read slowly: each request on a connection of its own, its answer read 4 KB every
 * 100 ms, never so little that the server sees the answer untaken. `close` ends them all.
 */
export class SlowReaders {
  readonly #sockets: Socket[] = [];
  readonly #timers: NodeJS.Timeout[] = [];

  /**
   * Sends `request(i)` for `count` connections, `spacingMs` apart; the first bytes (up to 4 KB) of each answer, pushed as they come.
   * `untilMessage`: up to the first bytes of the answer's body, or of an event stream's first message (its headers may come long before).
   */
  async open(url: URL, request: (i: number) => string, count: number, spacingMs = 20, untilMessage = false): Promise<string[]> {
    const firsts: string[] = [];
    for (let i = 0; i < count; i++) {
      const socket = connect(Number(url.port), "127.0.0.1");
      socket.on("error", () => undefined);
      socket.pause();
      socket.write(request(i));
      this.#sockets.push(socket);
      let first: string | undefined = "";
      this.#timers.push(
        setInterval(() => {
          const length = Math.min(4096, socket.readableLength);
          const chunk = length > 0 ? (socket.read(length) as Buffer | null) : (socket.read(0), null);
          if (chunk && first !== undefined) {
            first += chunk.toString("latin1");
            if (untilMessage && !/(\r\n\r\n(?:[0-9a-f]+\r\n)?|\ndata: )\{[^]{64}/.test(first)) return;
            firsts.push(first);
            first = undefined;
          }
        }, 100),
      );
      await new Promise((r) => setTimeout(r, spacingMs));
    }
    return firsts;
  }

  close(): void {
    for (const timer of this.#timers.splice(0)) clearInterval(timer);
    for (const socket of this.#sockets.splice(0)) socket.destroy();
  }
}

/** What became of `count` answers read slowly. */
export interface UnreadOutcome {
  answered: number;
  /** Refused `answers_unread` (either era's code). */
  refused: number;
  /** Bytes the server holds to write, more than `before`. */
  holding: number;
}

/** Waits until each of `count` answers has begun (at most 40 s), and 3 s more for what the server keeps, then counts what became of them. */
export async function unreadOutcome(firsts: string[], count: number, held: () => number, before: number): Promise<UnreadOutcome> {
  const started = Date.now();
  while (firsts.length < count && Date.now() - started < 40_000) await new Promise((r) => setTimeout(r, 200));
  await new Promise((r) => setTimeout(r, 3_000));
  return { answered: firsts.filter((f) => f.includes('"result":')).length, refused: firsts.filter((f) => f.includes('"code":"answers_unread"')).length, holding: held() - before };
}
