// Uploads FILE to a tus ENDPOINT with tus-js-client, in CHUNK-byte PATCHes,
// with a filename in the metadata; prints the upload URL, or the error and exits 1.
// Usage: node tus-upload.js ENDPOINT FILE [CHUNK] [TOKEN]
const fs = require("fs");
const path = require("path");
const tus = require("tus-js-client");

const [endpoint, file, chunk, token] = process.argv.slice(2);
const size = fs.statSync(file).size;
const upload = new tus.Upload(fs.createReadStream(file), {
  endpoint,
  uploadSize: size,
  chunkSize: Number(chunk || 65536),
  retryDelays: [0, 100, 500],
  metadata: { filename: path.basename(file), data_stream: "eicr" },
  headers: token ? { Authorization: `Bearer ${token}` } : {},
  onError(error) {
    console.error(`upload failed: ${error}`);
    process.exit(1);
  },
  onSuccess() {
    console.log(upload.url);
  },
});
upload.start();
