// A TLS gateway in front of a plaintext gRPC server (the local Spark
// Connect server), as a platform's endpoint is: TLS, a bearer token and a
// routing header on every call (Databricks' x-databricks-cluster-id).
// Node's own http2 module; no packages.
//   --upstream HOST:PORT   the plaintext gRPC server
//   --cert FILE --key FILE the gateway's certificate and key
//   --token TOKEN          the bearer token every call must carry
//   --header NAME=VALUE    a header every call must carry
// Prints "listening PORT" once it accepts connections.
'use strict';
const http2 = require('http2');
const fs = require('fs');

const options = {};
for (let index = 2; index < process.argv.length; index += 2) {
  options[process.argv[index].replace(/^--/, '')] = process.argv[index + 1];
}
const [headerName, headerValue] = (options.header || '=').split('=');
const upstream = http2.connect(`http://${options.upstream}`);
upstream.on('error', () => process.exit(1));

// A gRPC error as a trailers-only response.
function refuse(stream, code, message) {
  stream.respond(
    { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(code), 'grpc-message': message },
    { endStream: true },
  );
}

const server = http2.createSecureServer({
  cert: fs.readFileSync(options.cert),
  key: fs.readFileSync(options.key),
});
server.on('stream', (stream, headers) => {
  if (options.token && headers.authorization !== `Bearer ${options.token}`) {
    refuse(stream, 16, 'invalid or missing token');
    return;
  }
  if (headerName && headers[headerName.toLowerCase()] !== headerValue) {
    refuse(stream, 7, `missing header ${headerName}`);
    return;
  }
  const forwarded = {};
  for (const [name, value] of Object.entries(headers)) {
    if (!name.startsWith(':') && name !== 'authorization') forwarded[name] = value;
  }
  forwarded[':method'] = headers[':method'];
  forwarded[':path'] = headers[':path'];
  const call = upstream.request(forwarded);
  let trailers = {};
  call.on('response', (answer) => {
    const response = {};
    for (const [name, value] of Object.entries(answer)) {
      if (name !== ':status' || value) response[name] = value;
    }
    if (answer['grpc-status'] !== undefined) {
      stream.respond(response, { endStream: true });
      call.close();
      return;
    }
    stream.respond(response, { waitForTrailers: true });
    call.pipe(stream);
  });
  call.on('trailers', (received) => {
    trailers = received;
  });
  stream.on('wantTrailers', () => stream.sendTrailers(trailers));
  stream.pipe(call);
  call.on('error', () => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
  stream.on('error', () => call.close(http2.constants.NGHTTP2_CANCEL));
  stream.on('close', () => call.close(http2.constants.NGHTTP2_CANCEL));
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
