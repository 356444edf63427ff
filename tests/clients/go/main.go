// Command whoami prints the caller's ARN, as the AWS SDK for Go v2 sees it.
//
// An unmodified Go SDK v2 client for credd's end-to-end tests, loading its
// configuration exactly as Terraform's AWS provider does: config.LoadDefaultConfig
// with no options, so credentials, region and the STS endpoint all come from the
// SDK's default chain, i.e. from the environment the test sets
// (AWS_CONTAINER_CREDENTIALS_FULL_URI + AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE,
// AWS_EC2_METADATA_SERVICE_ENDPOINT, AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL_STS,
// the shared config files, ...). Nothing is passed in code.
//
// Usage:  whoami   (no arguments)
// Output: the ARN from sts:GetCallerIdentity as the single line on stdout; exit 0.
// On error: the error on stderr; exit 1.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

func main() {
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "whoami: takes no arguments; configure it through the environment")
		os.Exit(2)
	}
	// A bound on the whole run, so that a hung endpoint fails the test instead of
	// stalling it; the SDK's own timeouts are shorter.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	arn, err := whoami(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "whoami (Go SDK v2): %v\n", err)
		os.Exit(1)
	}
	fmt.Println(arn)
}

func whoami(ctx context.Context) (string, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return "", fmt.Errorf("loading the default config: %w", err)
	}
	out, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", err
	}
	if out.Arn == nil {
		return "", fmt.Errorf("GetCallerIdentity returned no Arn")
	}
	return aws.ToString(out.Arn), nil
}
