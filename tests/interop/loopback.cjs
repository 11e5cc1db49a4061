// Preload for reference servers that listen on every interface: bind loopback only, since tests talk
// only to 127.0.0.1, and announce the port each server got on stderr ("listening on 127.0.0.1:PORT"), so a
// test can start one with PORT=0 and let the OS choose. Used as `node --require tests/interop/loopback.cjs
// server.js`.
const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (typeof first === "number" || (typeof first === "string" && /^\d+$/.test(first))) {
    if (typeof args[1] !== "string") args.splice(1, 0, "127.0.0.1");
  } else if (first && typeof first === "object" && first.port !== undefined && !first.host) {
    args[0] = { ...first, host: "127.0.0.1" };
  }
  this.once("listening", () => {
    const address = this.address();
    if (address && typeof address === "object") {
      process.stderr.write(`listening on ${address.address}:${address.port}\n`);
    }
  });
  return listen.apply(this, args);
};
