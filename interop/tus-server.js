// A receiver shaped like the data-exchange upload service, for cutover's
// interop tests: @tus/server with @tus/file-store under /upload, an upload
// info endpoint (GET /upload/info/ID: manifest, file_info.size_bytes,
// upload_status.status, deliveries[]), and a finish hook that reproduces
// the two real failure modes on a first upload (a replay is delivered):
//   - a file whose name contains "lost" is deleted right after its 204;
//   - a file whose name contains "hook500" fails delivery in the finish
//     hook, which answers 500 (the bytes stay; the delivery is FAILED).
// Usage: node tus-server.js DIR   (prints "listening URL" once ready)
const fs = require("fs");
const http = require("http");
const path = require("path");
const { Server } = require("@tus/server");
const { FileStore } = require("@tus/file-store");

const directory = process.argv[2];
fs.mkdirSync(directory, { recursive: true });
const deliveries = new Map();

const tus = new Server({
  path: "/upload",
  datastore: new FileStore({ directory }),
  async onUploadFinish(req, res, upload) {
    const metadata = upload.metadata || {};
    const name = metadata.filename || "";
    const first = !metadata.replay_of;
    if (first && name.includes("hook500")) {
      deliveries.set(upload.id, "FAILED");
      throw { status_code: 500, body: "delivery to storage failed\n" };
    }
    if (first && name.includes("lost")) {
      res.on("finish", () => {
        for (const file of [upload.id, `${upload.id}.json`]) {
          fs.rmSync(path.join(directory, file), { force: true });
        }
        deliveries.delete(upload.id);
      });
    }
    deliveries.set(upload.id, "SUCCESS");
    return res;
  },
});

function info(id, res) {
  let upload;
  let size;
  try {
    upload = JSON.parse(fs.readFileSync(path.join(directory, `${id}.json`), "utf8"));
    size = fs.statSync(path.join(directory, id)).size;
  } catch {
    res.writeHead(404, { "content-type": "application/json" });
    return res.end(JSON.stringify({ error: "upload not found" }));
  }
  const status = deliveries.get(id);
  const complete = upload.size === size;
  res.writeHead(200, { "content-type": "application/json" });
  res.end(
    JSON.stringify({
      manifest: upload.metadata || {},
      file_info: { size_bytes: size },
      upload_status: { status: complete ? "Complete" : size > 0 ? "In Progress" : "Initiated" },
      deliveries: status
        ? [{ status, name: "storage", location: `file://${id}`, delivered_at: new Date().toISOString(), issues: status === "FAILED" ? ["delivery failed"] : [] }]
        : [],
    }),
  );
}

const server = http.createServer((req, res) => {
  const match = req.method === "GET" && req.url.match(/^\/upload\/info\/([A-Za-z0-9_-]+)$/);
  if (match) return info(match[1], res);
  return tus.handle(req, res);
});
server.listen(0, "127.0.0.1", () => {
  console.log(`listening http://127.0.0.1:${server.address().port}/upload`);
});
