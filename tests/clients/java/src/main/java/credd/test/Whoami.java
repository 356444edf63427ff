package credd.test;

import software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider;
import software.amazon.awssdk.services.sts.StsClient;
import software.amazon.awssdk.services.sts.model.GetCallerIdentityResponse;

/**
 * Prints the caller's ARN, as the AWS SDK for Java v2 sees it.
 *
 * <p>An unmodified Java SDK v2 client for credd's end-to-end tests, resolving credentials
 * as the JetBrains AWS Toolkit's SDK does: {@link DefaultCredentialsProvider} (system
 * properties, environment, web identity, the shared profile files, the container endpoint,
 * IMDS), the region from the default region chain and the STS endpoint from the SDK's own
 * endpoint settings ({@code AWS_ENDPOINT_URL_STS}, then {@code AWS_ENDPOINT_URL}). Nothing
 * is passed in code except the provider the builder would pick by default anyway.
 *
 * <p>Usage: {@code java -jar credd-java-whoami.jar} (no arguments). Output: the ARN from
 * sts:GetCallerIdentity as the single line on stdout; exit 0. On error: the error and its
 * causes on stderr; exit 1.
 */
public final class Whoami {
  private Whoami() {}

  public static void main(String[] args) {
    if (args.length > 0) {
      System.err.println("whoami (Java SDK v2): takes no arguments; configure it through the environment");
      System.exit(2);
    }
    try (DefaultCredentialsProvider credentials = DefaultCredentialsProvider.builder().build();
        StsClient sts = StsClient.builder().credentialsProvider(credentials).build()) {
      GetCallerIdentityResponse out = sts.getCallerIdentity();
      if (out.arn() == null) {
        System.err.println("whoami (Java SDK v2): GetCallerIdentity returned no Arn");
        System.exit(1);
      }
      System.out.println(out.arn());
      System.out.flush();
    } catch (RuntimeException err) {
      StringBuilder text = new StringBuilder("whoami (Java SDK v2): ").append(err);
      for (Throwable cause = err.getCause(); cause != null; cause = cause.getCause()) {
        text.append("\n  caused by: ").append(cause);
      }
      System.err.println(text);
      System.exit(1);
    }
    // The SDK's idle-connection reaper is a daemon thread; exit at once all the same.
    System.exit(0);
  }
}
