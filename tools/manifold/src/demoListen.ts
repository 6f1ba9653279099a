// Loaded with `--import` into the all-in-one's demo upstream. server-everything's Streamable HTTP
// script listens with `app.listen(PORT)`, on every interface, and has no setting for the address:
// its URL-fetching and environment tools were open to the network. This gives a listen that names
// no host the all-in-one's own (`DEMO_UPSTREAM_HOST`), as every other port of `npm start` has.
import { Server } from "node:net";

const host = process.env.DEMO_UPSTREAM_HOST;
const listen = Server.prototype.listen;
Server.prototype.listen = function (this: Server, ...args: unknown[]) {
  const [port, second] = args;
  if (host && (typeof port === "number" || typeof port === "string") && typeof second !== "string") args.splice(1, 0, host);
  return listen.apply(this, args as Parameters<Server["listen"]>);
} as Server["listen"];
