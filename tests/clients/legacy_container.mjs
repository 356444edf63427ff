#!/usr/bin/env node
// Print the caller's ARN with credentials from the legacy container provider,
// as the VS Code AWS Toolkit gets them.
//
// The Toolkit uses `fromContainerMetadata` of @smithy/credential-provider-imds
// (pinned in package.json): a 1 s timeout, no retry, plain http only to the
// hosts `localhost`/`127.0.0.1`, and the token from AWS_CONTAINER_AUTHORIZATION_TOKEN
// only (never AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE). It is called unmodified,
// with its defaults; the credentials it returns are used for one STS call,
// configured (region, endpoint) through the environment like whoami.mjs.
//
// Usage:  node legacy_container.mjs   (no arguments)
// Output: the ARN from sts:GetCallerIdentity as the single line on stdout; exit 0.
// On error: the error on stderr; exit 1.

import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import { fromContainerMetadata } from "@smithy/credential-provider-imds";

try {
  const credentials = await fromContainerMetadata()();
  const client = new STSClient({ credentials });
  const out = await client.send(new GetCallerIdentityCommand({}));
  process.stdout.write(`${out.Arn}\n`);
  process.exitCode = 0;
} catch (err) {
  const name = err?.name ?? "Error";
  const message = err?.message ?? String(err);
  process.stderr.write(`legacy_container.mjs: ${name}: ${message}\n`);
  process.exitCode = 1;
}
