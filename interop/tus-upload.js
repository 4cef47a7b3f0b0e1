// Uploads FILE to a tus ENDPOINT with tus-js-client, in CHUNK-byte PATCHes,
// with a filename in the metadata; prints the upload URL, or the error and exits 1.
// TUS_PARALLEL=N sends it as N partial uploads concatenated into one
// (parallelUploads); TUS_DEFERRED=1 starts it without a length
// (uploadLengthDeferred), which tus-js-client sends with the last PATCH;
// TUS_PROTOCOL=ietf-draft-05 speaks the IETF resumable-upload draft
// (interop version 6) instead of tus 1.0.
// Usage: node tus-upload.js ENDPOINT FILE [CHUNK] [TOKEN]
const fs = require("fs");
const path = require("path");
const tus = require("tus-js-client");

const [endpoint, file, chunk, token] = process.argv.slice(2);
const size = fs.statSync(file).size;
const parallel = Number(process.env.TUS_PARALLEL || 1);
const deferred = process.env.TUS_DEFERRED === "1";
// A deferred length is for streams of unknown length: a plain stream, not a
// file tus-js-client could measure.
const source = deferred
  ? fs.createReadStream(file).pipe(new (require("stream").PassThrough)())
  : fs.createReadStream(file);
const upload = new tus.Upload(source, {
  endpoint,
  ...(deferred ? { uploadLengthDeferred: true } : parallel > 1 ? {} : { uploadSize: size }),
  ...(parallel > 1 ? { parallelUploads: parallel } : {}),
  ...(process.env.TUS_PROTOCOL ? { protocol: process.env.TUS_PROTOCOL } : {}),
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
