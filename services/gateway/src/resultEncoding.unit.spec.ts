import { expect, test } from "vitest";
import { ResultEncoding } from "./resultEncoding.js";

const server = { name: "vs", version: "1" };

// The connector passes a result on as its upstream wrote it (`resultTextOf`), spacing and all: the
// splice must not assume the compact text `JSON.stringify` writes. `{ }` was spliced as
// `{"resultType":"complete","_meta":{…}, }`, which no client can parse.
test.each([["{}"], ["{ }"], ["{\n}"], ['{ "content": [ ] }'], ['{"content":[{"type":"text","text":"a"}],"isError":false}']])("a 2026-07-28 call result %j is spliced into an answer that parses to the result with resultType and the server's identity", (text) => {
  const answer = JSON.parse(new ResultEncoding(1_000).callResult("modern", 7, text, server)) as { id: number; result: Record<string, unknown> };
  expect(answer.id).toBe(7);
  expect(answer.result).toMatchObject({ ...(JSON.parse(text) as object), resultType: "complete" });
  expect(Object.keys(answer.result._meta as object)).toHaveLength(1);
});
