import { ManifoldError } from "@manifold/contracts";
import { Registry } from "@manifold/telemetry";
import Fastify from "fastify";
import { expect, test } from "vitest";
import { Refusals } from "../refusals.js";
import { registerErrorHandling } from "./errors.js";

/** The admin API's answer to a route that throws `error`: its status, `Retry-After` and code. */
async function answerTo(error: ManifoldError) {
  const app = Fastify();
  registerErrorHandling(app, new Refusals(new Registry()));
  app.get("/fails", async () => {
    throw error;
  });
  const res = await app.inject({ method: "GET", url: "/fails" });
  await app.close();
  return { status: res.statusCode, retryAfter: res.headers["retry-after"], code: res.json().error.code };
}

test.each([
  ["a bound's own seconds (too_many_reads)", new ManifoldError("too_many_reads", "x", { retryAfterSeconds: 1 }), 429, "1"],
  ["a wait in milliseconds, rounded up to whole seconds", new ManifoldError("at_capacity", "x", { retryAfterMs: 2_500 }), 503, "3"],
  ["a 503 that names no wait (bus_unavailable): one second", new ManifoldError("bus_unavailable", "x"), 503, "1"],
  ["a 503's own wait rather than the default", new ManifoldError("bus_unavailable", "x", { retryAfterMs: 4_000 }), 503, "4"],
  ["an error a retry does not help (not_found): none", new ManifoldError("not_found", "x"), 404, undefined],
  ["a 401: none", new ManifoldError("unauthorized", "x"), 401, undefined],
])("Retry-After of %s", async (_what, error, status, retryAfter) => {
  expect(await answerTo(error)).toEqual({ status, retryAfter, code: error.code });
});
