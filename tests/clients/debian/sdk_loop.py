#!/usr/bin/env python3
"""A long-running service's view of credd: one boto3 client, GetCallerIdentity every second.

Runs inside a container of credd's real-engine tests (tests/tests/docker_refresh.rs).
Credentials come from boto3's default chain only (the container's
AWS_CONTAINER_CREDENTIALS_FULL_URI and token file); the one client and its session
live for the whole run, so when credd renews the role's credentials it is botocore's
own refresh that fetches them again, as in a real service.

Usage: python sdk_loop.py [INTERVAL_SECONDS]   (default 1)
Output: one line per call, flushed:
    OK <ARN> <ACCESS_KEY_ID>      the call succeeded with that key id (never the secret)
    FAIL <error type>: <message>  it did not
Runs until killed.
"""

import sys
import time

import boto3


def main() -> None:
    interval = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    session = boto3.session.Session()
    sts = session.client("sts")
    while True:
        try:
            arn = sts.get_caller_identity()["Arn"]
            key = session.get_credentials().get_frozen_credentials().access_key
            print(f"OK {arn} {key}", flush=True)
        except Exception as err:  # noqa: BLE001 - every failure is a logged result
            print(f"FAIL {type(err).__name__}: {err}".replace("\n", " "), flush=True)
        time.sleep(interval)


if __name__ == "__main__":
    main()
