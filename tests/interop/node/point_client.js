#!/usr/bin/env node
// A MolmoAgent client in Node.js, built only from the .proto files in protos/ (no generated code, no
// Python). tests/test_interop_node.py runs it against a real server and compares its points with the
// Python client's.
//
// Usage:
//   node point_client.js TARGET QUERY IMAGE_PATH [--raw-bgr WIDTH HEIGHT RAW_PATH] [--token TOKEN]
//                        [--timeout-ms MS]
//
// IMAGE_PATH is an encoded image file (PNG, JPEG, ...) sent as Image.encoded. With --raw-bgr, the image is
// RAW_PATH's bytes instead, sent as Image.raw (PIXEL_FORMAT_BGR8, WIDTH x HEIGHT, tightly packed rows)
// and IMAGE_PATH is not read (pass "-"). Prints one JSON line: the response, or
// {"error": {"code": <numeric gRPC status>, "details": "..."}} with exit status 1. Bad arguments: a message
// on stderr and exit status 2.
"use strict";

const fs = require("fs");
const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const PROTO_ROOT = path.resolve(__dirname, "..", "..", "..", "protos");
const SERVICE_PROTO = "molmo_agent/v1/service.proto";
const DEFAULT_TIMEOUT_MS = 60000;
const USAGE =
  "usage: node point_client.js TARGET QUERY IMAGE_PATH [--raw-bgr WIDTH HEIGHT RAW_PATH] " +
  "[--token TOKEN] [--timeout-ms MS]";

// Bad command-line arguments or input files: a message on stderr and exit status 2 (no RPC was made).
function usageError(message) {
  process.stderr.write(message + "\n");
  process.exit(2);
}

function parsePositiveInt(text, name) {
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) {
    usageError(`${name} must be a positive integer, got ${JSON.stringify(text)}`);
  }
  return value;
}

function parseArgs(argv) {
  const positional = [];
  const options = { raw: null, token: null, timeoutMs: DEFAULT_TIMEOUT_MS };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--raw-bgr") {
      if (i + 3 >= argv.length) usageError(USAGE);
      options.raw = {
        width: parsePositiveInt(argv[i + 1], "WIDTH"),
        height: parsePositiveInt(argv[i + 2], "HEIGHT"),
        path: argv[i + 3],
      };
      i += 3;
    } else if (arg === "--token") {
      if (i + 1 >= argv.length) usageError(USAGE);
      options.token = argv[++i];
    } else if (arg === "--timeout-ms") {
      if (i + 1 >= argv.length) usageError(USAGE);
      options.timeoutMs = parsePositiveInt(argv[++i], "--timeout-ms");
    } else {
      positional.push(arg);
    }
  }
  if (positional.length !== 3) usageError(USAGE);
  [options.target, options.query, options.imagePath] = positional;
  return options;
}

function loadService() {
  const definition = protoLoader.loadSync(SERVICE_PROTO, {
    includeDirs: [PROTO_ROOT],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition).molmo_agent.v1.MolmoAgent;
}

function buildImage(options) {
  if (options.raw) {
    const { width, height } = options.raw;
    const data = fs.readFileSync(options.raw.path);
    const stride = width * 3;
    if (data.length < stride * height) {
      usageError(
        `${options.raw.path} holds ${data.length} bytes; a ${width}x${height} BGR8 image needs ${stride * height}`,
      );
    }
    return { raw: { width, height, stride, format: "PIXEL_FORMAT_BGR8", data } };
  }
  return { encoded: fs.readFileSync(options.imagePath) };
}

function vec3(value) {
  return value ? { x: value.x, y: value.y, z: value.z } : null;
}

function toJson(response) {
  const timing = response.timing || {};
  return {
    points: response.points.map((p) => ({
      x: p.x,
      y: p.y,
      x_norm: p.x_norm,
      y_norm: p.y_norm,
      label: p.label,
      image_index: p.image_index,
      object_id: p.object_id,
      camera_xyz: vec3(p.camera_xyz),
      base_xyz: vec3(p.base_xyz),
      depth_note: p.depth_note,
    })),
    count: response.count,
    text: response.text,
    reason: response.reason,
    model_id: response.model_id,
    timing: {
      queued_ms: timing.queued_ms,
      decode_ms: timing.decode_ms,
      preprocess_ms: timing.preprocess_ms,
      model_ms: timing.model_ms,
      parse_ms: timing.parse_ms,
      total_ms: timing.total_ms,
      batch_size: timing.batch_size,
    },
  };
}

function main() {
  const options = parseArgs(process.argv.slice(2));
  const MolmoAgent = loadService();
  const client = new MolmoAgent(options.target, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  if (options.token !== null) metadata.set("authorization", `Bearer ${options.token}`);
  const request = { images: [buildImage(options)], query: options.query, mode: "POINT_MODE_ONE" };
  const deadline = new Date(Date.now() + options.timeoutMs);
  client.Point(request, metadata, { deadline }, (error, response) => {
    client.close();
    if (error) {
      process.stdout.write(JSON.stringify({ error: { code: error.code, details: error.details } }) + "\n");
      process.exitCode = 1;
      return;
    }
    process.stdout.write(JSON.stringify(toJson(response)) + "\n");
  });
}

main();
