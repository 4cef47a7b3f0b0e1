// A stand-in for the data-exchange upload service, written from its
// contract (shared DATA-EXCHANGE.md), for cutover's tests and benchmarks:
//   - sign-in: POST /oauth (password or client-credentials grant, form
//     fields), POST /oauth/refresh; opaque tokens that expire;
//   - tus 1.0 under /upload/files (@tus/server with @tus/file-store:
//     creation, creation-with-upload, termination; no checksum extension),
//     bearer token on everything but OPTIONS;
//   - the manifest (Upload-Metadata) validated at creation: 400 with
//     {"upload_id", "validation_errors"};
//   - GET /upload/info/ID with the manifest, file_info, upload_status and
//     an append-only log of delivery attempts that fills in asynchronously;
//   - POST /graphql, the processing-status queries getUploads (paged),
//     getUploadStats and getReports (graphql-js executes them).
// The contract's sharp edges are knobs (flags):
//   --token-lifetime S      seconds a token lives (3600)
//   --refuse-refresh        /oauth/refresh answers 400 (a new login is needed)
//   --delivery-delay MS     from completion to each delivery attempt (1500)
//   --status-lag MS         upload_status is "" this long after completion (300)
//   --targets A,B           delivery targets ("edav"; "" for none)
//   --retry-percent N       targets that record FAILURE, then SUCCESS on retry (33)
//   --never-percent N       files whose deliveries fail every retry (0)
//   --lose-percent N        files lost right after their 204 (20); never a replay
//   --lose-matching TEXT    also lose files whose received_filename contains TEXT
//   --never-matching TEXT   also never deliver files whose received_filename contains TEXT
//   --require KEY           a manifest key this service requires besides the contract's
//   --deny-info             the info endpoint answers 401 to every token
//   --strangers N           uploads from elsewhere, known to the status service (0)
//   --user NAME:PASSWORD    an account (sender:sender-password)
//   --client ID:SECRET      an OAuth client (none)
// Files are chosen by a hash of received_filename, so a rerun chooses the
// same ones. GET /_standin/state (no token) tells a test what happened.
// Usage: node dex-standin.js DIR [flags]   (prints "listening URL" once ready)
const crypto = require("crypto");
const fs = require("fs");
const http = require("http");
const path = require("path");
const { Server } = require("@tus/server");
const { FileStore } = require("@tus/file-store");
const { buildSchema, graphql } = require("graphql");

const argv = process.argv.slice(2);
const directory = argv[0];
const option = (name, fallback) => {
  const at = argv.indexOf(`--${name}`);
  return at >= 0 ? argv[at + 1] : fallback;
};
const flag = (name) => argv.includes(`--${name}`);
const many = (name) => argv.flatMap((value, at) => (argv[at - 1] === `--${name}` ? [value] : []));
const knobs = {
  tokenLifetime: Number(option("token-lifetime", "3600")),
  refuseRefresh: flag("refuse-refresh"),
  deliveryDelay: Number(option("delivery-delay", "1500")),
  statusLag: Number(option("status-lag", "300")),
  targets: option("targets", "edav").split(",").filter(Boolean),
  retryPercent: Number(option("retry-percent", "33")),
  neverPercent: Number(option("never-percent", "0")),
  losePercent: Number(option("lose-percent", "20")),
  strangers: Number(option("strangers", "0")),
  loseMatching: option("lose-matching", null),
  neverMatching: option("never-matching", null),
  denyInfo: flag("deny-info"),
};
const accounts = new Map((many("user").length ? many("user") : ["sender:sender-password"]).map((pair) => pair.split(/:(.*)/s).slice(0, 2)));
const clients = new Map(many("client").map((pair) => pair.split(/:(.*)/s).slice(0, 2)));
const REQUIRED = ["data_stream_id", "data_stream_route", "sender_id", "data_producer_id", "jurisdiction", "received_filename", ...many("require")];

fs.mkdirSync(directory, { recursive: true });
const tokens = new Map(); // access token -> expiry (ms)
const refreshTokens = new Set();
// Every upload the processing-status service heard of, by id (a lost
// upload stays here: the service reported it before the bytes were lost).
const uploads = new Map();
const counters = { logins: 0, refreshes: 0, refusedRefreshes: 0, unauthorized: 0, created: 0, refusedManifests: 0 };

const chosen = (knob, name, percent) => {
  const digest = crypto.createHash("sha256").update(`${knob}:${name}`).digest();
  return digest.readUInt32BE(0) % 100 < percent;
};
const json = (res, status, body) => {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
};
const readBody = (req) =>
  new Promise((resolve, reject) => {
    const parts = [];
    req.on("data", (part) => parts.push(part));
    req.on("end", () => resolve(Buffer.concat(parts).toString("utf8")));
    req.on("error", reject);
  });
const issue = () => {
  const access = crypto.randomBytes(24).toString("hex");
  const refresh = crypto.randomBytes(24).toString("hex");
  tokens.set(access, Date.now() + knobs.tokenLifetime * 1000);
  refreshTokens.add(refresh);
  return {
    access_token: access,
    token_type: "Bearer",
    expires_in: knobs.tokenLifetime,
    refresh_token: refresh,
    scope: "dex:upload dex:status",
    resource: ["upload", "status"],
  };
};
const authorized = (req) => {
  const match = (req.headers.authorization || "").match(/^Bearer (.+)$/);
  const expiry = match && tokens.get(match[1]);
  if (expiry && expiry > Date.now()) return true;
  counters.unauthorized += 1;
  return false;
};

async function oauth(req, res, refresh) {
  const form = new URLSearchParams(await readBody(req));
  if (refresh) {
    const token = form.get("refresh_token");
    if (knobs.refuseRefresh || !refreshTokens.has(token)) {
      counters.refusedRefreshes += 1;
      return json(res, 400, { error: "invalid_grant", error_description: "the refresh token is not valid" });
    }
    refreshTokens.delete(token);
    counters.refreshes += 1;
    return json(res, 200, issue());
  }
  const grant = form.get("grant_type") || "password";
  const good =
    grant === "client_credentials"
      ? clients.has(form.get("client_id")) && clients.get(form.get("client_id")) === form.get("client_secret")
      : accounts.has(form.get("username")) && accounts.get(form.get("username")) === form.get("password");
  if (!good) return json(res, 400, { error: "invalid_grant", error_description: "wrong user name or password" });
  counters.logins += 1;
  return json(res, 200, issue());
}

function validate(metadata) {
  const errors = REQUIRED.filter((key) => !metadata[key]).map((key) => `missing required field ${key}`);
  if ((metadata.received_filename || "").includes("/")) errors.push("received_filename may not contain /");
  return errors;
}

// The delivery pipeline: after completion, each target gets attempts.
function deliver(record) {
  const name = record.metadata.received_filename || "";
  const never =
    !record.metadata.replay_of &&
    (chosen("never", name, knobs.neverPercent) || (knobs.neverMatching !== null && name.includes(knobs.neverMatching)));
  knobs.targets.forEach((target) => {
    const retried = never || chosen(`retry:${target}`, name, knobs.retryPercent);
    const attempts = never ? 3 : retried ? 2 : 1;
    for (let attempt = 1; attempt <= attempts; attempt += 1) {
      setTimeout(() => {
        const success = !never && attempt === attempts;
        record.deliveries.push({
          status: success ? "SUCCESS" : "FAILURE",
          name: target,
          location: success ? `${target}://${record.id}` : "",
          delivered_at: new Date().toISOString(),
          issues: success ? null : [{ level: "ERROR", message: "the target did not accept the file" }],
        });
      }, knobs.deliveryDelay * attempt);
    }
  });
}

const tus = new Server({
  path: "/upload/files",
  datastore: new FileStore({ directory }),
  async onUploadCreate(req, res, upload) {
    const metadata = upload.metadata || {};
    const errors = validate(metadata);
    if (errors.length) {
      counters.refusedManifests += 1;
      uploads.set(upload.id, { id: upload.id, metadata, size: upload.size, offset: 0, status: "FailedMetadata", issues: errors, created: Date.now(), deliveries: [] });
      throw { status_code: 400, body: JSON.stringify({ upload_id: upload.id, validation_errors: errors }) };
    }
    counters.created += 1;
    uploads.set(upload.id, { id: upload.id, metadata, size: upload.size, offset: 0, status: "Uploading", created: Date.now(), deliveries: [] });
    return res;
  },
  async onUploadFinish(req, res, upload) {
    const record = uploads.get(upload.id);
    if (!record) return res;
    record.offset = upload.size;
    record.status = "UploadComplete";
    record.completed = Date.now();
    const name = record.metadata.received_filename || "";
    const lose = chosen("lose", name, knobs.losePercent) || (knobs.loseMatching !== null && name.includes(knobs.loseMatching));
    if (!record.metadata.replay_of && lose) {
      record.lost = true;
      res.on("finish", () => {
        for (const file of [upload.id, `${upload.id}.json`]) fs.rmSync(path.join(directory, file), { force: true });
      });
      return res;
    }
    deliver(record);
    return res;
  },
});

function info(id, res) {
  const record = uploads.get(id);
  if (!record || record.lost || record.status === "FailedMetadata" || !fs.existsSync(path.join(directory, `${id}.json`))) {
    return json(res, 404, { error: "upload not found" });
  }
  let size = null;
  try {
    size = fs.statSync(path.join(directory, id)).size;
  } catch {}
  const complete = record.completed !== undefined;
  const settled = complete && Date.now() - record.completed >= knobs.statusLag;
  json(res, 200, {
    manifest: { ...record.metadata, upload_id: id, dex_ingest_datetime: new Date(record.created).toISOString() },
    file_info: settled ? { size_bytes: size, updated_at: new Date(record.completed).toISOString() } : null,
    upload_status: complete
      ? settled
        ? { status: "Complete", chunk_received_at: new Date(record.completed).toISOString() }
        : { status: "" }
      : { status: size > 0 ? "In Progress" : "Initiated", chunk_received_at: new Date().toISOString() },
    deliveries: record.deliveries.length ? record.deliveries : null,
  });
}

// The processing-status service.
const schema = buildSchema(`
  type PageSummary { pageNumber: Int! numberOfPages: Int! pageSize: Int! totalItems: Int! }
  type UploadStatus {
    uploadId: String fileName: String status: String fileSizeBytes: Float bytesUploaded: Float
    percentComplete: Float timestamp: String senderId: String jurisdiction: String issues: [String]
  }
  type UploadsStatus { summary: PageSummary! items: [UploadStatus!]! }
  type DuplicateFilenameCounts { filename: String totalCount: Float! }
  type UndeliveredUpload { uploadId: String filename: String }
  type UndeliveredUploadCounts { totalCount: Float! undeliveredUploads: [UndeliveredUpload!]! }
  type PendingUploadCounts { totalCount: Float! pendingUploads: [UndeliveredUpload!]! }
  type UploadStats {
    uniqueUploadIdsCount: Float! uploadsWithStatusCount: Float! badMetadataCount: Float! completedUploadsCount: Float!
    duplicateFilenames: [DuplicateFilenameCounts!]! undeliveredUploads: UndeliveredUploadCounts! pendingUploads: PendingUploadCounts!
  }
  type Issue { level: String message: String }
  type Report { uploadId: String stageName: String status: String timestamp: String issues: [Issue!] }
  type Query {
    getUploads(dataStreamId: String!, dataStreamRoute: String, dateStart: String, dateEnd: String, pageSize: Int = 20,
               pageNumber: Int = 1, sortBy: String, sortOrder: String, fileName: String): UploadsStatus!
    getUploadStats(dataStreamId: String!, dataStreamRoute: String!, dateStart: String, dateEnd: String, daysInterval: Int): UploadStats!
    getReports(uploadId: String!): [Report!]!
  }
`);
// yyyyMMddTHHmmssZ, as the service reads dates.
const parseDate = (text) => {
  if (!text) return null;
  const match = text.match(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/);
  if (!match) throw new Error(`Failed to parse ${text} as a date. Format should be: yyyyMMdd'T'HHmmss'Z'.`);
  const [, y, mo, d, h, mi, s] = match.map(Number);
  return Date.UTC(y, mo - 1, d, h, mi, s);
};
const selected = ({ dataStreamId, dataStreamRoute, dateStart, dateEnd, fileName }) => {
  const start = parseDate(dateStart);
  const end = parseDate(dateEnd);
  return [...uploads.values()]
    .filter((record) => record.metadata.data_stream_id === dataStreamId)
    .filter((record) => !dataStreamRoute || record.metadata.data_stream_route === dataStreamRoute)
    .filter((record) => (start === null || record.created >= start) && (end === null || record.created < end))
    .filter((record) => !fileName || record.metadata.received_filename === fileName)
    .sort((a, b) => a.created - b.created || a.id.localeCompare(b.id));
};
const delivered = (record) => knobs.targets.length > 0 && knobs.targets.every((target) => {
  const attempts = record.deliveries.filter((attempt) => attempt.name === target);
  return attempts.length && attempts[attempts.length - 1].status === "SUCCESS";
});
const asStatus = (record) => ({
  uploadId: record.id,
  fileName: record.metadata.received_filename,
  status: record.status,
  fileSizeBytes: record.status === "FailedMetadata" ? null : record.size,
  bytesUploaded: record.status === "FailedMetadata" ? null : record.offset,
  percentComplete: record.size ? (100 * record.offset) / record.size : 100,
  timestamp: new Date(record.created).toISOString(),
  senderId: record.metadata.sender_id,
  jurisdiction: record.metadata.jurisdiction,
  issues: record.issues || null,
});
const root = {
  getUploads(args) {
    const all = selected(args);
    const pageSize = Math.max(1, args.pageSize);
    const items = all.slice((args.pageNumber - 1) * pageSize, args.pageNumber * pageSize).map(asStatus);
    return { summary: { pageNumber: args.pageNumber, numberOfPages: Math.ceil(all.length / pageSize), pageSize, totalItems: all.length }, items };
  },
  getUploadStats(args) {
    const all = selected(args);
    const names = new Map();
    all.filter((record) => record.status !== "FailedMetadata").forEach((record) => names.set(record.metadata.received_filename, (names.get(record.metadata.received_filename) || 0) + 1));
    const undelivered = all.filter((record) => record.status === "UploadComplete" && knobs.targets.length > 0 && !delivered(record));
    const pending = all.filter((record) => record.status === "Uploading");
    const pair = (record) => ({ uploadId: record.id, filename: record.metadata.received_filename });
    return {
      uniqueUploadIdsCount: all.length,
      uploadsWithStatusCount: all.filter((record) => record.status !== "FailedMetadata").length,
      badMetadataCount: all.filter((record) => record.status === "FailedMetadata").length,
      completedUploadsCount: all.filter((record) => record.status === "UploadComplete").length,
      duplicateFilenames: [...names].filter(([, count]) => count > 1).map(([filename, totalCount]) => ({ filename, totalCount })),
      undeliveredUploads: { totalCount: undelivered.length, undeliveredUploads: undelivered.map(pair) },
      pendingUploads: { totalCount: pending.length, pendingUploads: pending.map(pair) },
    };
  },
  getReports({ uploadId }) {
    const record = uploads.get(uploadId);
    if (!record) return [];
    const at = (time) => new Date(time).toISOString();
    const reports = [{ uploadId, stageName: "metadata-verify", status: record.issues ? "FAILURE" : "SUCCESS", timestamp: at(record.created), issues: (record.issues || []).map((message) => ({ level: "ERROR", message })) }];
    if (record.status === "FailedMetadata") return reports;
    reports.push({ uploadId, stageName: "upload-started", status: "SUCCESS", timestamp: at(record.created), issues: [] });
    if (record.completed !== undefined) reports.push({ uploadId, stageName: "upload-completed", status: "SUCCESS", timestamp: at(record.completed), issues: [] });
    record.deliveries.forEach((attempt) => reports.push({ uploadId, stageName: "blob-file-copy", status: attempt.status, timestamp: attempt.delivered_at, issues: attempt.issues || [] }));
    return reports;
  },
};

async function status(req, res) {
  let request;
  try {
    request = JSON.parse(await readBody(req));
  } catch {
    return json(res, 400, { errors: [{ message: "the body is not JSON" }] });
  }
  const result = await graphql({ schema, source: request.query || "", rootValue: root, variableValues: request.variables || {} });
  json(res, 200, result);
}

// Uploads from elsewhere: known to the status service, unknown to the sender.
for (let number = 1; number <= knobs.strangers; number += 1) {
  const id = crypto.randomBytes(16).toString("hex");
  const record = {
    id,
    metadata: { data_stream_id: option("stranger-stream", "celr"), data_stream_route: option("stranger-route", "csv"), sender_id: "elsewhere", data_producer_id: "elsewhere", jurisdiction: "null", received_filename: `stranger-${number}.csv` },
    size: 100,
    offset: 100,
    status: "UploadComplete",
    created: Date.now(),
    completed: Date.now(),
    deliveries: [],
    stranger: true,
  };
  uploads.set(id, record);
  deliver(record);
}

function state(res) {
  json(res, 200, {
    counters,
    uploads: [...uploads.values()].map((record) => ({
      id: record.id,
      filename: record.metadata.received_filename,
      replay_of: record.metadata.replay_of || null,
      status: record.status,
      lost: !!record.lost,
      stranger: !!record.stranger,
      delivered: delivered(record),
      deliveries: record.deliveries.length,
    })),
  });
}

const server = http.createServer(async (req, res) => {
  try {
    const url = req.url.split("?")[0];
    if (req.method === "POST" && url === "/oauth") return await oauth(req, res, false);
    if (req.method === "POST" && url === "/oauth/refresh") return await oauth(req, res, true);
    if (req.method === "GET" && url === "/_standin/state") return state(res);
    const known = url === "/graphql" || url.startsWith("/upload/");
    if (!known) return json(res, 404, { error: "not found" });
    if (req.method !== "OPTIONS" && !authorized(req)) return json(res, 401, { error: "unauthorized" });
    if (req.method === "POST" && url === "/graphql") return await status(req, res);
    const match = req.method === "GET" && url.match(/^\/upload\/info\/([A-Za-z0-9_-]+)$/);
    if (match && knobs.denyInfo) {
      counters.unauthorized += 1;
      return json(res, 401, { error: "unauthorized" });
    }
    if (match) return info(match[1], res);
    return tus.handle(req, res);
  } catch (error) {
    json(res, 500, { error: String(error && error.message) });
  }
});
server.listen(Number(option("port", "0")), "127.0.0.1", () => {
  console.log(`listening http://127.0.0.1:${server.address().port}`);
});
