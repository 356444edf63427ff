#!/usr/bin/env node
// Print the caller's ARN, as the AWS SDK for JavaScript v3 sees it.
//
// An unmodified JS SDK v3 client for credd's end-to-end tests: credentials, region and
// the STS endpoint all come from the SDK's default chain, i.e. from the environment the
// test sets (AWS_CONTAINER_CREDENTIALS_FULL_URI + AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE,
// AWS_EC2_METADATA_SERVICE_ENDPOINT, AWS_REGION, ...). Nothing is passed in code.
//
// The STS endpoint: the pinned SDK (3.1169.0) reads AWS_ENDPOINT_URL_STS (then
// AWS_ENDPOINT_URL) natively, through @smithy/core's getEndpointUrlConfig, so the
// script does not read it itself.
//
// Usage:  node whoami.mjs   (no arguments; run from tests/clients or with NODE_PATH
//         unset: imports resolve against tests/clients/node_modules next to this file)
// Output: the ARN from sts:GetCallerIdentity as the single line on stdout; exit 0.
// On error: the error on stderr; exit 1.

import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";

try {
  const client = new STSClient({});
  const out = await client.send(new GetCallerIdentityCommand({}));
  process.stdout.write(`${out.Arn}\n`);
  process.exitCode = 0;
} catch (err) {
  const name = err?.name ?? "Error";
  const message = err?.message ?? String(err);
  process.stderr.write(`whoami.mjs: ${name}: ${message}\n`);
  process.exitCode = 1;
}
