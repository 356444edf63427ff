//! The command line, as clap types. Raw flags only: `main` resolves them
//! against the config file and environment.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

pub mod help;
pub mod man;

#[derive(Debug, Parser)]
#[command(
    name = "credd",
    version,
    about = "Holds your AWS sessions and vends short-lived credentials to SDKs, shells, containers and IDEs.",
    long_about = "credd is a per-user daemon that reads your ~/.aws/config, holds the sessions behind each \
profile (MFA sessions, role chains, web identity, credential_process), renews them before they expire and \
serves them over a localhost endpoint that every AWS SDK understands \
(AWS_CONTAINER_CREDENTIALS_FULL_URI), an optional IMDSv2 emulation, and a few commands.\n\n\
Start the daemon with `credd serve`, then run things with `credd exec PROFILE -- COMMAND`.",
    after_help = help::TOP
)]
pub struct Cli {
    /// Log more (-v: debug, -vv: trace). CREDD_LOG, else RUST_LOG, overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (stops cleanly on Ctrl-C or SIGTERM).
    #[command(
        after_help = "The endpoint listens on 127.0.0.1:9911 unless --listen or credd.toml says otherwise; \
the IMDSv2 emulation is off unless --imds-listen and --imds-profile are given.\n\n\
Example:\n  credd serve --imds-listen 127.0.0.1:9912 --imds-profile dev"
    )]
    Serve(ServeArgs),
    /// Run credd at login as a service: a systemd user unit (Linux) or a launchd agent (macOS).
    #[command(
        subcommand,
        after_help = "install writes the unit files (or the plist) with this credd binary's path, enables and \
starts them; uninstall stops and removes them; status shows the service manager's view and pings the daemon. \
--print shows what would be written and run, and changes nothing.\n\n\
Examples:\n  credd service install --print\n  credd service install\n  credd service status\n  credd service uninstall\n\n\
Docs: docs/service.md."
    )]
    Service(ServiceCommand),
    /// Run a command with a profile's credentials, served by the daemon.
    #[command(after_help = help::EXEC)]
    Exec(ExecArgs),
    /// Print the variables that point a shell or tool at the endpoint.
    #[command(
        after_help = "Prints (and unsets) exactly what `credd exec` sets for its command (see `credd exec --help`), \
including the overlay AWS_CONFIG_FILE and AWS_DEFAULT_REGION; the token is not revoked on its own \
(`credd token list`, `credd token revoke ID`). With --format json, a variable to unset is null.\n\n\
Examples:\n  eval \"$(credd env dev)\"                  # sh, bash, zsh\n  credd env dev --format fish | source\n  credd env dev --static                   # the temporary keys themselves (they expire!)"
    )]
    Env(EnvArgs),
    /// Print credentials as credential_process JSON (Version 1).
    #[command(
        name = "credential-process",
        after_help = "Use it from ~/.aws/config so that the AWS CLI, Terraform and IDE plugins get credentials from credd:\n\n  [profile dev-via-credd]\n  credential_process = credd credential-process dev\n\n\
It answers from the daemon's cache and never prompts: when the profile needs `credd mfa` or `credd login`, \
it fails at once with that command in the message (exit 1) and the daemon raises a desktop notification \
(an IDE shows neither stderr nor a prompt)."
    )]
    CredentialProcess(ProfileArg),
    /// Write a profile's temporary keys into ~/.aws/credentials.
    #[command(
        name = "write-credentials",
        after_help = "Only the section [NAME] is written (every other section and comment stays as it was), \
atomically. A section that credd did not write is never overwritten. The keys expire: prefer `credd exec` \
or credential_process where the tool supports it."
    )]
    WriteCredentials(WriteCredentialsArgs),
    /// Start the MFA session behind a profile (asks for the code).
    #[command(
        after_help = "One MFA session is shared by every profile built on the same keys and mfa_serial, \
and survives daemon restarts until it expires. Without --code the code is read from standard input, \
so a script can pipe it in and keep it off the command line (which other users can see in `ps`).\n\n\
Examples:\n  credd mfa dev\n  ykman oath accounts code -s aws | credd mfa dev\n  credd mfa dev --code 123456"
    )]
    Mfa(MfaArgs),
    /// Sign in: to IAM Identity Center (SSO), or with your console credentials (`aws login` sessions).
    #[command(
        after_help = help::LOGIN
    )]
    Login(LoginArgs),
    /// Sign out of IAM Identity Center: the portal's Logout, and the cached token removed.
    #[command(
        after_help = "Without SESSION, every SSO session in ~/.aws/config is logged out (as `aws sso logout`).

Example:
  credd logout work"
    )]
    Logout {
        /// The sso-session to sign out of [default: all].
        session: Option<String>,
    },
    /// IAM Identity Center: the accounts and roles you are assigned, and profiles for them.
    #[command(subcommand)]
    Sso(SsoCommand),
    /// Try credd with no AWS account: a local sandbox, a throwaway config, logins, live refreshes.
    #[command(
        after_help = help::DEMO
    )]
    Demo(DemoArgs),
    /// Show every profile: source chain, state, expiry, next refresh, last error.
    #[command(
        after_help = "Then the IAM Identity Center sessions and the `aws login` sessions: each one's state, when its \
token or credentials expire, when credd last got and next renews them, the profiles on it, and the command \
that signs in again when it needs one (\"sso_sessions\", \"login_sessions\" in --json).\n\n\
Last, every session a person keeps alive (MFA, SSO, `aws login`) in one table: the profiles on it, when it \
ends and what it will need then, e.g. \"a new MFA code: `credd mfa dev`\" (\"sessions\" in --json).\n\n\
Also warns when your AWS files hold something that wins over credd where `credd exec` \
is not used (a [default] with credentials), naming the file and section (\"files\": {\"shadows\": [...]} in --json).\n\n\
Examples:\n  credd status\n  credd status --json | jq -r '.profiles[] | select(.state != \"fresh\") | .name'\n  credd prompt                    # one line for your shell prompt instead"
    )]
    Status(JsonArg),
    /// Issue, list and revoke client tokens for the endpoint.
    #[command(
        subcommand,
        after_help = "A token lets a process that credd did not start (a service, an IDE, a script on a timer) \
fetch a profile's credentials from the endpoint; `credd exec` and `credd env` issue their own. Only a digest is kept.\n\n\
Examples:\n  credd token issue --profile dev --ttl 8h --file ~/.config/myapp/aws-token\n  credd token list\n  \
credd token revoke 1a2b3c4d5e6f7a8b\n  credd token revoke --label ci"
    )]
    Token(TokenCommand),
    /// Call sts:GetCallerIdentity with a profile's credentials.
    #[command(
        after_help = "Prints the account, the ARN and the user id, aligned; --json prints STS's own document ({\"Account\", \"Arn\", \"UserId\"}). \
The call is made by the daemon with the credentials it serves, so it shows exactly who an SDK pointed at credd is.\n\n\
Examples:\n  credd whoami dev\n  credd whoami dev --json | jq -r .Arn\n  for p in dev prod; do credd whoami $p; done"
    )]
    Whoami(WhoamiArgs),
    /// Open the AWS console signed in as a profile (or print the sign-in URL).
    #[command(
        after_help = help::CONSOLE
    )]
    Console(ConsoleArgs),
    /// Decode an \"Encoded authorization failure message\" (sts:DecodeAuthorizationMessage).
    #[command(
        name = "decode-message",
        after_help = help::DECODE_MESSAGE
    )]
    DecodeMessage(DecodeMessageArgs),
    /// List the profiles credd can serve, and why any other cannot be served.
    #[command(
        after_help = "Then the `aws login` sessions they use, with their expiry.\n\n\
Also warns when your AWS files hold something that wins over credd where `credd exec` \
is not used (a [default] with credentials), naming the file and section (on stderr with --json).\n\n\
Example:\n  credd profiles link dev     # adds [profile dev-credd] with credential_process = credd credential-process dev"
    )]
    Profiles(ProfilesArgs),
    /// Forward credential requests from a network that cannot reach the host's
    /// loopback (docker compose, Docker Desktop) to the credd daemon.
    #[command(
        after_help = "The relay holds no credentials and no token: each request's own token is passed \
to the daemon, which checks it. Only GET /v1/... is forwarded.\n\n\
Example (a compose service at 169.254.170.2, see docs/docker.md):\n  credd relay --listen 169.254.170.2:80 --to http://host.docker.internal:9911"
    )]
    Relay {
        /// Where the relay listens (loopback or 169.254.170.2/.23).
        #[arg(long, value_name = "ADDR")]
        listen: String,
        /// The daemon's endpoint, http://HOST:PORT.
        #[arg(long, value_name = "URL")]
        to: String,
    },
    /// Credentials for docker containers: setup, args, run.
    #[command(subcommand)]
    Docker(DockerCommand),
    /// One short segment for a shell prompt: profile, time left, \"MFA in 5m\".
    #[command(after_help = help::PROMPT)]
    Prompt(PromptArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    #[command(after_help = help::COMPLETIONS)]
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page, credd(1) (or write every page to a directory).
    #[command(after_help = help::MAN)]
    Man {
        /// Write credd.1 and one page per command into this directory instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Check the container path: address, nat rule order (root), listener, port 80.
    #[command(
        after_help = help::DOCTOR
    )]
    Doctor,
    /// Show which credentials were vended: when, which profile, to which token and peer.
    #[command(
        after_help = help::AUDIT
    )]
    Audit(AuditArgs),
    /// Keep long-term IAM user keys in the OS keychain instead of ~/.aws/credentials.
    #[command(
        subcommand,
        after_help = "The store is [keys] backend in credd.toml: the OS keychain (Secret Service on Linux, \
Keychain on macOS) or a passphrase-encrypted file (CREDD_KEYS_PASSPHRASE or a prompt). \
A profile keeps working for every tool through `credential_process = credd credential-process NAME` \
in ~/.aws/config, served as GetSessionToken credentials, never the long-term keys.\n\n\
Examples:\n  credd keys import dev       # move [dev]'s keys out of ~/.aws/credentials\n  credd keys import --all\n  \
credd keys add ci --env     # from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY\n  credd keys list\n  \
credd keys rotate dev       # new key created, checked and stored; the old one deleted\n  credd keys remove ci"
    )]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Store keys under NAME (asked for without echo, or --env).
    Add {
        /// The name (use the profile's name).
        name: String,
        /// Read AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead of asking.
        #[arg(long)]
        env: bool,
    },
    /// Move a profile's keys out of ~/.aws/credentials into the store.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["name", "all"])))]
    Import {
        /// The profile ([NAME] in ~/.aws/credentials).
        name: Option<String>,
        /// Every section of ~/.aws/credentials that holds keys.
        #[arg(long)]
        all: bool,
    },
    /// List stored keys: names, masked key ids, age, backend (never a secret).
    List(JsonArg),
    /// Delete the keys stored under NAME.
    Remove {
        /// The name (see `credd keys list`).
        name: String,
    },
    /// Replace NAME's key: iam:CreateAccessKey, check it, store it, iam:DeleteAccessKey the old one;
    /// a failure at any step leaves a working key stored and says which keys IAM holds.
    Rotate {
        /// The name (see `credd keys list`).
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Settings file [default: $CREDD_CONFIG or ~/.config/credd/credd.toml].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address of the container-credentials endpoint [default: 127.0.0.1:9911].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Another container-endpoint address, e.g. 169.254.170.2:80 for docker
    /// containers (repeatable; adds to extra_listen in credd.toml).
    #[arg(long, value_name = "ADDR")]
    pub also_listen: Vec<String>,
    /// Address of the IMDSv2 emulation (off unless set). It has no
    /// per-client token: any process of yours that reaches it gets the
    /// profile's credentials (the IMDSv2 session token only stops SSRF).
    /// Other users' connections to a loopback address are refused on Linux
    /// (limits.same_user_only); macOS has no such check.
    #[arg(long, value_name = "ADDR", requires = "imds_profile")]
    pub imds_listen: Option<String>,
    /// The profile the IMDS emulation serves.
    #[arg(long, value_name = "NAME")]
    pub imds_profile: Option<String>,
    /// Also answer IMDSv1 (no session token). Off by default.
    #[arg(long)]
    pub allow_imdsv1: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Check that every demo profile is served end to end, print the result and exit.
    #[arg(long)]
    pub self_check: bool,
    /// Where the demo's endpoint listens [default: a free loopback port].
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: String,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The [sso-session NAME] to sign in to [default: the only one in ~/.aws/config].
    #[arg(conflicts_with = "profile")]
    pub session: Option<String>,
    /// Sign in to the session behind this profile instead (SSO or `aws login`).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Use the device code flow (a URL and a code to approve on any device). SSO only.
    #[arg(long, conflicts_with = "remote")]
    pub device_code: bool,
    /// Do not open a browser; print the URL only.
    #[arg(long)]
    pub no_browser: bool,
    /// `aws login` profiles: sign in on any device and paste the code the page shows (no browser, no redirect).
    #[arg(long, requires = "profile")]
    pub remote: bool,
    /// `aws login` profiles: the Sign-In region [default: the profile's].
    #[arg(long, value_name = "REGION", requires = "profile")]
    pub region: Option<String>,
    /// `aws login` profiles: replace the profile's session with another identity's without asking.
    #[arg(long, short = 'y', requires = "profile")]
    pub yes: bool,
}

#[derive(Debug, Subcommand)]
pub enum SsoCommand {
    /// List every account and role you are assigned (all pages).
    #[command(after_help = "Examples:
  credd sso accounts
  credd sso accounts work --json")]
    Accounts {
        /// The sso-session [default: the only one].
        session: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Add one profile per account and role to ~/.aws/config.
    #[command(
        after_help = "Profiles are named ACCOUNT-ROLE (with --prefix in front) and use sso_session = SESSION. Only new sections are appended; every other section and comment stays as it was, and a profile that exists with other settings is left alone. The previous file is kept as config.credd-backup. Re-running adds only what is new.

Examples:
  credd sso populate work --dry-run     # show the diff, change nothing
  credd sso populate work --prefix acme- --region eu-west-1"
    )]
    Populate {
        /// The sso-session whose assignments to add.
        session: String,
        /// Show the diff and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Put this in front of every profile name.
        #[arg(long, value_name = "P")]
        prefix: Option<String>,
        /// Set region = R in every new profile.
        #[arg(long, value_name = "R")]
        region: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The profile whose credentials the command gets.
    pub profile: String,
    /// Lifetime of the command's token (it is revoked when the command exits).
    #[arg(long, value_name = "DUR", default_value = "24h")]
    pub token_ttl: String,
    /// Point the command at the daemon's IMDSv2 emulation instead of the
    /// container endpoint (the daemon must serve IMDS for PROFILE).
    #[arg(long)]
    pub imds: bool,
    /// Let the command see your own AWS config and credentials files (no
    /// overlay): their [default] or AWS_PROFILE's profile may then win over credd.
    #[arg(long)]
    pub keep_aws_config: bool,
    /// The command and its arguments, after `--` [default: $SHELL].
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Shell {
    Sh,
    Fish,
    Powershell,
    Cmd,
    Json,
}

#[derive(Debug, Args)]
pub struct EnvArgs {
    /// A profile from ~/.aws/config or ~/.aws/credentials (see `credd profiles`).
    pub profile: String,
    #[arg(long, value_enum, default_value = "sh")]
    pub format: Shell,
    /// Print the temporary keys themselves instead of the endpoint (with
    /// --format json: the credential_process document).
    #[arg(long = "static")]
    pub static_keys: bool,
    /// Lifetime of the endpoint token written for this shell.
    #[arg(long, value_name = "DUR", default_value = "12h")]
    pub token_ttl: String,
    /// Point the shell at the daemon's IMDSv2 emulation instead of the
    /// container endpoint (the daemon must serve IMDS for PROFILE).
    #[arg(long, conflicts_with = "static_keys")]
    pub imds: bool,
    /// Leave AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE alone (no
    /// overlay): your files' [default] may then win over credd.
    #[arg(long)]
    pub keep_aws_config: bool,
}

#[derive(Debug, Args)]
pub struct ProfilesArgs {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub action: Option<ProfilesAction>,
}

#[derive(Debug, Subcommand)]
pub enum ProfilesAction {
    /// Add a profile to ~/.aws/config that gets NAME's credentials from credd
    /// through credential_process (for IDE plugins, Terraform, the AWS CLI).
    #[command(
        after_help = "Only the new section is written (every other section and comment stays as it was), \
atomically. A section credd did not write is never overwritten. The new profile carries NAME's \
non-credential settings (region, endpoint_url, services, retries...). credd refuses when the credentials \
file has a section of the new name holding keys (SDKs would use those instead).\n\n\
Then use it: AWS_PROFILE=dev-credd terraform plan, or pick dev-credd in the AWS Toolkit."
    )]
    Link {
        /// The profile whose credentials the new one serves.
        name: String,
        /// The new profile's name [default: NAME-credd].
        #[arg(long = "as", value_name = "NEW")]
        as_name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DockerCommand {
    /// Make 169.254.170.2 reach credd from containers on bridge networks (root).
    #[command(
        after_help = help::DOCKER_SETUP
    )]
    Setup {
        /// Remove what setup added.
        #[arg(long)]
        undo: bool,
        /// Only print the commands.
        #[arg(long)]
        print: bool,
    },
    /// Print the `docker run` flags that give a container PROFILE's credentials.
    #[command(
        after_help = help::DOCKER_ARGS
    )]
    Args {
        profile: String,
        /// Lifetime of the container's token.
        #[arg(long, value_name = "DUR", default_value = "12h")]
        token_ttl: String,
    },
    /// `docker run` with PROFILE's credentials; the token is revoked when the container exits.
    #[command(
        after_help = help::DOCKER_RUN
    )]
    Run {
        profile: String,
        /// Lifetime of the container's token.
        #[arg(long, value_name = "DUR", default_value = "12h")]
        token_ttl: String,
        /// docker run's own arguments, then IMAGE [CMD...].
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            required = true,
            value_name = "DOCKER ARGS"
        )]
        docker_args: Vec<String>,
    },
    /// The containers that hold live credd tokens: container, image, profile, token age.
    #[command(
        after_help = help::DOCKER_PS
    )]
    Ps {
        /// Print JSON (one array of rows).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only records newer than this (e.g. 30m, 2h, 7d).
    #[arg(long, value_name = "DUR")]
    pub since: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PromptArgs {
    /// The profile to show [default: $CREDD_PROFILE, else $AWS_PROFILE].
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Say what the profile will need when its MFA, SSO or sign-in session ends within this.
    #[arg(long, value_name = "DUR", default_value = "15m")]
    pub soon: String,
    /// Give up on a slow daemon after this many milliseconds (print nothing).
    #[arg(long, value_name = "MS", default_value_t = 300)]
    pub timeout_ms: u64,
}

#[derive(Debug, Args)]
pub struct ProfileArg {
    /// A profile from ~/.aws/config or ~/.aws/credentials (see `credd profiles`).
    pub profile: String,
}

#[derive(Debug, Args)]
pub struct WhoamiArgs {
    /// A profile from ~/.aws/config or ~/.aws/credentials (see `credd profiles`).
    pub profile: String,
    /// STS's GetCallerIdentity document.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// A profile from ~/.aws/config or ~/.aws/credentials (see `credd profiles`).
    pub profile: String,
    /// Print the sign-in URL on stdout instead of opening a browser.
    #[arg(long)]
    pub print: bool,
    /// Open this service's console page (e.g. s3, ec2, cloudwatch) [default: the console home].
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// The console's region [default: the profile's region].
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// How long the console session lasts (e.g. 1h, 90m; 15m to 12h for roles, up to 36h for an IAM
    /// user's GetFederationToken) [default: AWS's; 12h for an IAM user].
    #[arg(long, value_name = "DUR")]
    pub duration: Option<String>,
}

#[derive(Debug, Args)]
pub struct DecodeMessageArgs {
    /// A profile from ~/.aws/config or ~/.aws/credentials (see `credd profiles`).
    pub profile: String,
    /// The encoded message from the error, or `-` to read it from standard input.
    pub message: String,
}

#[derive(Debug, Args)]
pub struct JsonArg {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct WriteCredentialsArgs {
    /// A profile from ~/.aws/config or ~/.aws/credentials (see `credd profiles`).
    pub profile: String,
    /// The section to write [default: PROFILE-temp]. Never a section credd
    /// did not write, so a profile's own keys are never replaced.
    #[arg(long = "as", value_name = "NAME")]
    pub as_name: Option<String>,
}

#[derive(Debug, Args)]
pub struct MfaArgs {
    /// A profile from ~/.aws/config or ~/.aws/credentials (see `credd profiles`).
    pub profile: String,
    /// The code; read from standard input when omitted (prefer that: a
    /// command line is visible to every user of the machine).
    #[arg(long)]
    pub code: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a token (printed once; only its digest is kept).
    #[command(
        after_help = "Example:\n  credd token issue --profile dev --ttl 8h --file ~/.config/myapp/aws-token\n\n\
Give it to an SDK as AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (preferred) or AWS_CONTAINER_AUTHORIZATION_TOKEN."
    )]
    Issue(TokenIssueArgs),
    /// List live tokens (ids, scopes, expiry; never secrets).
    #[command(
        after_help = "Examples:\n  credd token list\n  credd token list --json | jq -r '.[] | select(.label == \"ci\") | .id'"
    )]
    List(JsonArg),
    /// Revoke a token by id or by its value, or every token with a label, or all.
    #[command(
        after_help = "Examples:\n  credd token revoke 1a2b3c4d5e6f7a8b          # by id (see `credd token list`)\n  credd token revoke \"$(cat ~/.config/myapp/aws-token)\"   # by the token itself\n  credd token revoke --label ci                 # every live token labelled ci\n  credd token revoke --all                      # every token\n\n\
A value is matched by its digest, as the endpoint checks it, and is never printed back."
    )]
    Revoke(TokenRevokeArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["id", "label", "all"])))]
pub struct TokenRevokeArgs {
    /// The token's id, or the whole token (`credd_...`).
    #[arg(value_name = "ID_OR_TOKEN")]
    pub id: Option<String>,
    /// Revoke every live token with this label.
    #[arg(long, value_name = "LABEL")]
    pub label: Option<String>,
    /// Revoke every token.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct TokenIssueArgs {
    /// A profile the token may fetch (repeat for several).
    #[arg(long = "profile", required = true, value_name = "NAME")]
    pub profiles: Vec<String>,
    /// Lifetime (e.g. 30m, 8h, 7d) [default: tokens.default_ttl, 12h].
    #[arg(long, value_name = "DUR")]
    pub ttl: Option<String>,
    /// A note shown by `credd token list`.
    #[arg(long, default_value = "")]
    pub label: String,
    /// Write the token to this file (0600, no newline, replaced atomically) instead of
    /// stdout. A missing directory is created 0700; an existing one keeps its mode, and
    /// one other users can write to without the sticky bit is refused.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Install and start credd as a login service for this user.
    #[command(
        after_help = help::SERVICE_INSTALL
    )]
    Install(ServiceArgs),
    /// Stop and disable the service and remove the files install wrote (sessions are kept).
    Uninstall(ServiceArgs),
    /// Show the service manager's view of credd and whether the daemon answers.
    Status(ServiceArgs),
}

#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// Print what would be written and run, and change nothing.
    #[arg(long)]
    pub print: bool,
    /// The service manager [default: systemd on Linux, launchd on macOS].
    #[arg(long, value_enum, value_name = "NAME")]
    pub manager: Option<ServiceManager>,
    /// Instead of the user service: the boot-time system unit
    /// credd-docker-setup.service, which runs `credd docker setup` at boot and
    /// after every docker start (root: `sudo credd service install
    /// --docker-setup`; goes to /etc/systemd/system, or CREDD_SYSTEM_UNIT_DIR).
    #[arg(long)]
    pub docker_setup: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ServiceManager {
    Systemd,
    Launchd,
}
