#!/usr/bin/env python3
"""Print the caller's ARN, as boto3 sees it.

An unmodified boto3 client for credd's end-to-end tests: credentials, region and the
STS endpoint all come from boto3's default chain, i.e. from the environment the test
sets (AWS_CONTAINER_CREDENTIALS_FULL_URI, AWS_EC2_METADATA_SERVICE_ENDPOINT,
AWS_PROFILE/AWS_CONFIG_FILE, AWS_REGION, AWS_ENDPOINT_URL_STS, ...). Nothing is
passed in code.

Usage: python whoami.py   (no arguments)
Output: the ARN from sts:GetCallerIdentity as the single line on stdout; exit 0.
On error: the error on stderr; exit 1.
"""

import sys

import boto3


def main() -> int:
    try:
        arn = boto3.client("sts").get_caller_identity()["Arn"]
    except Exception as err:  # noqa: BLE001 - report any failure to the test harness
        print(f"whoami.py: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    print(arn, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
