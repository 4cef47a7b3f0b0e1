// Uploads every file of DIR to a tus ENDPOINT with tus-js-client, JOBS at a
// time, in CHUNK-byte PATCHes (the peer a sender would otherwise use);
// prints the number of files sent, or the first error and exits 1.
// TUS_PARALLEL=N sends each file as N partial uploads concatenated into one
// (parallelUploads; the server must offer concatenation).
// Usage: node tus-js-send.js ENDPOINT DIR [JOBS] [CHUNK]
const fs = require("fs");
const path = require("path");
const tus = require("tus-js-client");

const [endpoint, directory, jobs, chunk] = process.argv.slice(2);
const parallel = Number(process.env.TUS_PARALLEL || 1);
const files = fs.readdirSync(directory).sort().map((name) => path.join(directory, name));
let next = 0;
let sent = 0;

function upload(file) {
  return new Promise((resolve, reject) => {
    const size = fs.statSync(file).size;
    const upload = new tus.Upload(fs.createReadStream(file), {
      endpoint,
      ...(parallel > 1 ? { parallelUploads: parallel } : { uploadSize: size }),
      chunkSize: Number(chunk || 4 << 20),
      retryDelays: [0, 100, 500],
      metadata: { filename: path.basename(file) },
      onError: reject,
      onSuccess: resolve,
    });
    upload.start();
  });
}

async function worker() {
  while (next < files.length) {
    const file = files[next++];
    await upload(file);
    sent++;
  }
}

Promise.all(Array.from({ length: Number(jobs || 4) }, worker)).then(
  () => console.log(sent),
  (error) => {
    console.error(`upload failed: ${error}`);
    process.exit(1);
  },
);
