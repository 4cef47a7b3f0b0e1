// A TCP proxy that adds latency: every byte is forwarded DELAY_MS after it
// arrived, in each direction (so a round trip gains twice DELAY_MS), as a
// link with that one-way delay does; bandwidth is not limited. For
// benchmarks where `tc netem` is not available.
// Prints "listening http://127.0.0.1:PORT" once it accepts connections.
// Usage: node delay-proxy.js TARGET_HOST:PORT [DELAY_MS]
const net = require("net");

const [target, delayArgument] = process.argv.slice(2);
const [host, port] = target.split(":");
const delay = Number(delayArgument || 20);
// Bytes held in flight per direction before the sender is paused.
const HIGH = 64 << 20;
const LOW = 16 << 20;

function forward(from, to) {
  let held = 0;
  from.on("data", (chunk) => {
    held += chunk.length;
    if (held > HIGH) from.pause();
    setTimeout(() => {
      to.write(chunk);
      held -= chunk.length;
      if (held < LOW) from.resume();
    }, delay);
  });
  from.on("end", () => setTimeout(() => to.end(), delay));
  from.on("error", () => to.destroy());
  from.on("close", () => setTimeout(() => to.destroy(), delay + 1));
}

const server = net.createServer((client) => {
  client.setNoDelay(true);
  const upstream = net.connect(Number(port), host);
  upstream.setNoDelay(true);
  forward(client, upstream);
  forward(upstream, client);
});
server.listen(0, "127.0.0.1", () => {
  console.log(`listening http://127.0.0.1:${server.address().port}`);
});
