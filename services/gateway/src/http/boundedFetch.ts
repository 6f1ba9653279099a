/**
 * A response body read whole, up to `maxBytes`: a body that says or turns out to be larger is
 * refused as soon as that is known (its stream cancelled), never held. Identity providers and
 * authorization servers are not trusted to send documents of a reasonable size: a 200 MB key set
 * read whole took ~940 MiB of a gateway's heap and stalled every tenant's requests for seconds.
 */
export async function readBounded(response: Response, maxBytes: number, what: string): Promise<Buffer> {
  const declared = Number(response.headers.get("content-length"));
  if (declared > maxBytes) {
    await response.body?.cancel().catch(() => undefined);
    throw new TypeError(`${what} is ${declared} bytes, more than the ${maxBytes} accepted`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (response.body) {
    const reader = response.body.getReader();
    for (let read = await reader.read(); !read.done; read = await reader.read()) {
      size += read.value.length;
      if (size > maxBytes) {
        await reader.cancel().catch(() => undefined);
        throw new TypeError(`${what} is more than the ${maxBytes} bytes accepted`);
      }
      chunks.push(read.value);
    }
  }
  return Buffer.concat(chunks, size);
}

/** `fetch`, with every response body bounded (`readBounded`) before the caller sees it. */
export const boundedFetch =
  (maxBytes: number, what: string) =>
  async (url: string | URL, init?: RequestInit): Promise<Response> => {
    const response = await fetch(url, init);
    const body = await readBounded(response, maxBytes, what);
    // A status without a body (204, 304) takes none.
    const empty = response.status === 204 || response.status === 304;
    return new Response(empty ? null : body, { status: response.status, statusText: response.statusText, headers: response.headers });
  };
