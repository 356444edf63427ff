//! The long `--help` texts (after-help) of the commands with the most to
//! say, kept out of `cli.rs` so the flag definitions stay readable, and the
//! exit-code summary of `credd --help` (checked against `exit::TABLE`).
//!
//! Layering: part of the `cli` leaf; it imports nothing.

/// `credd exec --help`.
pub const EXEC: &str = "The command gets:\n  \
AWS_CONTAINER_CREDENTIALS_FULL_URI     the endpoint, for PROFILE\n  \
AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE a token scoped to PROFILE, revoked when the command exits\n  \
AWS_CONTAINER_AUTHORIZATION_TOKEN      the same token (for clients that read only the variable)\n  \
AWS_CONFIG_FILE                        an overlay holding only PROFILE's non-credential settings\n                                         \
(region, endpoint_url, services, retries, ca_bundle...) as [default]\n  \
AWS_SHARED_CREDENTIALS_FILE            an empty file\n  \
AWS_REGION, AWS_DEFAULT_REGION         the profile's region\n  \
CREDD_PROFILE                          PROFILE, for a prompt to show (`credd prompt`)\n\
and no AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE, AWS_DEFAULT_PROFILE, \
AWS_WEB_IDENTITY_TOKEN_FILE or AWS_ROLE_ARN. So nothing in your ~/.aws files or environment (a [default] \
with keys, role_arn, sso_session or credential_process, an exported AWS_PROFILE) wins over credd, and SDKs \
fetch fresh credentials from credd for as long as the command runs. --keep-aws-config leaves your files \
visible instead; --imds sets AWS_EC2_METADATA_SERVICE_ENDPOINT (no token) instead of the container variables.\n\n\
Before the command starts, credd asks the daemon for PROFILE's credentials: when the profile needs an MFA code or a \
sign-in, credd asks for the code (without echo) or offers to sign in (`credd login`) on your terminal, then goes on; \
without a terminal it fails with the command to run (exit 1) and the command does not run.\n\n\
Without COMMAND, credd opens your $SHELL (else /bin/sh) with all of the above; `exit` leaves it and revokes its token.\n\n\
The command goes after `--`: everything after it is the command's own, options included.\n\n\
Examples:\n  credd exec dev -- aws sts get-caller-identity\n  credd exec dev                        # a shell with dev's credentials\n  credd exec --imds dev -- some-tool   # needs `credd serve --imds-listen ... --imds-profile dev`";

/// `credd login --help`.
pub const LOGIN: &str = "IAM Identity Center (SSO): by default credd opens the sign-in page in your browser and listens on 127.0.0.1 for the redirect (authorization code with PKCE, as `aws sso login` does). --device-code prints a URL and a code to approve from any device instead (for machines without a browser); legacy profiles always use it. The token goes to ~/.aws/sso/cache exactly as the AWS CLI writes it, so `aws` and every SDK use it too, and the daemon refreshes it until the Identity Center session ends. Tokens from `aws sso login` are picked up the same way.

Console credentials (`aws login`): `credd login --profile P`, where P has login_session (or has no credentials yet, or does not exist), signs in as `aws login --profile P` does: credd opens the AWS sign-in page in your browser and listens on 127.0.0.1 for the redirect. --remote is for a machine without a browser (over SSH): credd prints the URL, you sign in on any device, and paste the authorization code the page shows. The session's credentials go to ~/.aws/login/cache (AWS_LOGIN_CACHE_DIRECTORY) exactly as the AWS CLI writes them, and login_session = <your identity's ARN> into [profile P] (only that key; the region too if P has none). Replacing another identity's session asks first (--yes does not). The region is --region, else P's. The daemon renews the credentials (they last 15 minutes) ahead of expiry until the session ends (up to 12 hours). A profile that already has other credentials (keys, SSO, a role, credential_process) is refused, as `aws login` refuses it.

For a SAML profile (credd_saml_process), `credd login --profile P` runs the helper in the foreground instead, so it can open a browser or wait for a push approval, then has the daemon renew the profile at once; the daemon's own runs of the helper never ask you.

credd never starts a login on its own.

Examples:
  credd login                      # the only [sso-session] in ~/.aws/config
  credd login work
  credd login --profile dev        # the session behind a profile (also legacy sso_start_url profiles)
  credd login work --device-code --no-browser
  credd login --profile corp       # a SAML profile: runs its credd_saml_process with your terminal
  credd login --profile console    # console credentials, as `aws login --profile console`
  credd login --profile console --remote --region eu-west-1";

/// `credd --help`'s after-help: examples, files, docs and the exit codes.
pub const TOP: &str = "Examples:\n  credd serve                              # run the daemon in the foreground\n  credd exec dev -- aws s3 ls              # run a command with dev's credentials\n  credd exec dev                           # a shell with dev's credentials\n  credd mfa dev                            # start the MFA session behind dev\n  credd status                             # what is held, when it expires\n  eval \"$(credd env dev)\"                   # point this shell at the endpoint\n\n\
Exit codes: 0 success, 1 error (the message says what and what to do; also a profile that needs an MFA code or a \
sign-in with no terminal to ask on), 2 usage error, 3 the daemon is not running; `credd exec` passes on its command's \
status, 126 when it cannot be run, 127 when it is not found.\n\n\
Files: CREDD_CONFIG (settings), CREDD_RUNTIME_DIR (control socket), CREDD_STATE_DIR (sessions, tokens).\n\
Shell completions: `credd completions bash|zsh|fish|powershell|elvish`; manual page: `credd man`.\n\
Docs: docs/configuration.md, docs/http-api.md, docs/security.md.";

/// `credd prompt --help`.
pub const PROMPT: &str = "Prints one short segment for a shell prompt: the profile (from CREDD_PROFILE, set by \
`credd exec` and `credd env`, else AWS_PROFILE), the time its credentials have left, and what it will need soon \
(\"MFA in 5m\" when the MFA session behind it ends within --soon; \"needs MFA\", \"login required\" when it \
already does). It answers from the daemon's status (one control round trip, nothing upstream) and prints nothing, \
exiting 0, when there is no profile or the daemon is not running or slow: a prompt never breaks a shell.\n\n\
Examples:\n  PS1='$(credd prompt) '\\$PS1                      # bash, zsh (setopt PROMPT_SUBST)\n\
  function fish_right_prompt; credd prompt; end\n\
  # starship.toml:\n  [custom.credd]\n  command = \"credd prompt\"\n  when = \"true\"";

/// `credd completions --help`.
pub const COMPLETIONS: &str =
    "Prints the completion script for SHELL on stdout, generated from the same definitions \
as the commands, so it always matches this binary.\n\n\
Examples:\n  credd completions bash > ~/.local/share/bash-completion/completions/credd\n\
  credd completions zsh > \"${fpath[1]}/_credd\"\n\
  credd completions fish > ~/.config/fish/completions/credd.fish\n\
  credd completions powershell >> $PROFILE\n\
  eval \"$(credd completions elvish)\"";

/// `credd man --help`.
pub const MAN: &str =
    "Prints credd(1) in roff on stdout, generated from the same definitions as --help; \
with --dir, writes credd.1 and one page per command (credd-exec.1, ...) there instead \
(`credd service install` installs them in ~/.local/share/man/man1).\n\n\
Examples:\n  credd man | man -l -\n  credd man --dir ~/.local/share/man/man1";

/// `credd console --help`.
pub const CONSOLE: &str = "Role profiles (a role, SSO, SAML, a login session...) go to the federation endpoint's getSigninToken with the credentials the daemon serves. A profile of bare long-term keys (an IAM user) first gets GetFederationToken credentials, made here with the keys from your AWS files (named after your login name, with a policy allowing everything, so the console has exactly the user's permissions); MFA cannot be used with GetFederationToken. The federation endpoint is https://signin.aws.amazon.com/federation (the China and GovCloud partitions' by the region), or $AWS_ENDPOINT_URL_SIGNIN/federation when that is set.\n\n\
The URL signs anyone who opens it in within 15 minutes: credd never logs it, and opens the browser on a private 0600 page that redirects to it (removed 10 seconds later), not with the URL on the browser's command line. --print writes it to stdout, for you to paste (mind your terminal's scrollback).\n\n\
Examples:\n  credd console dev\n  credd console dev --service s3 --region eu-west-1\n  credd console admin --duration 4h\n  credd console dev --print | xclip";

/// `credd service install --help`.
pub const SERVICE_INSTALL: &str = "systemd: writes credd.service, credd.socket and credd-control.socket to \
~/.config/systemd/user/, then runs `systemctl --user daemon-reload`, enables the three units and \
(re)starts credd.service. launchd: writes ~/Library/LaunchAgents/com.credd.daemon.plist and runs \
`launchctl bootstrap gui/UID` on it. Running it again updates the files and restarts the daemon.\n\n\
The settings of this shell that change what credd reads are written into the unit (Environment=) or \
plist (EnvironmentVariables): AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE, CREDD_CONFIG (or a credd.toml \
under XDG_CONFIG_HOME), a moved state directory and AWS_LOGIN_CACHE_DIRECTORY. Secrets \
(AWS_ACCESS_KEY_ID...) never are: install warns and leaves them out. --print shows it all. \
The systemd unit lets credd write only its own directories, ~/.aws/sso/cache and ~/.aws/login/cache.\n\n\
Also installs the manual pages (`credd man`'s: credd.1 and one per command) in ~/.local/share/man/man1, \
and says how to set MANPATH when `man -w credd` would not find them there; `credd service uninstall` \
removes them.";

/// `credd docker setup --help`.
pub const DOCKER_SETUP: &str = "Adds a dummy interface credd0 with 169.254.170.2/32 (lo where the kernel has no dummy \
interfaces), and DNATs 169.254.170.2:80 to credd's unprivileged listener 169.254.170.2:9913 in a nat chain CREDD \
jumped to from the top of PREROUTING (containers) and OUTPUT (host, host-network containers), before docker's \
rules: a container publishing port 80 never sees a request meant for credd. Idempotent: says what was present \
and what it changed, and puts credd's jumps back on top when docker has put its own there (docker does when it \
restarts: systemd/credd-docker-setup.service re-runs this after every docker start). The DNAT target is not \
loopback, so route_localnet stays off and nothing on 127.0.0.0/8 is exposed. `credd doctor` checks it all.\n\n\
Examples:\n  credd docker setup --print     # show the commands, change nothing\n  sudo credd docker setup\n  sudo credd docker setup --undo";

/// `credd demo --help`.
pub const DEMO: &str = "Starts a local stand-in for IAM Identity Center, AWS Sign-In and STS on 127.0.0.1, writes a throwaway AWS config in a private temporary directory (an sso-session, an SSO profile, a role chained on it, an MFA profile and an `aws login` session profile), signs in to both (approved automatically), serves the four profiles on a free loopback port and prints what to paste in another shell. Tokens and credentials live a few minutes, so refreshes happen while you watch. Your own ~/.aws is never read or written. Ctrl-C stops it and removes the directory.\n\n\
Examples:\n  credd demo\n  credd demo --self-check      # check every profile end to end, then exit (CI runs this)";

/// `credd docker args --help`.
pub const DOCKER_ARGS: &str = "The token is mounted read-only at /run/secrets/credd-token (never on argv or in the \
environment), and so are an overlay config with only PROFILE's non-credential settings \
(/run/secrets/credd-aws-config, AWS_CONFIG_FILE) and an empty credentials file \
(/run/secrets/credd-aws-credentials, AWS_SHARED_CREDENTIALS_FILE), so nothing else wins over credd \
in the container, even with ~/.aws mounted. Without a container listener (`credd docker setup`), the flags include --network host. \
The flags label the container credd.token=ID: the token is revoked when that container is removed, or when no container \
has taken it within docker.claim_within (5m).\n\n\
Example:\n  docker run $(credd docker args dev) amazon/aws-cli sts get-caller-identity";

/// `credd docker run --help`.
pub const DOCKER_RUN: &str = "Example:\n  credd docker run dev --rm amazon/aws-cli sts get-caller-identity\n\n\
With -d/--detach (read from docker's options before IMAGE, e.g. -itd, --detach=true) the token stays valid until the \
container is removed (credd watches the docker engine: docker.watch in credd.toml; `credd docker ps` lists them), \
at the latest until --token-ttl. The container is labelled credd.token=ID (the token's id, not its secret).";

/// `credd docker ps --help`.
pub const DOCKER_PS: &str = "Lists the tokens of `credd docker run` and `credd docker args` that are bound to the \
docker engine credd watches (docker.watch in credd.toml), each with its container as the engine shows it now. \
A token is revoked when its container is removed; one no container claimed within docker.claim_within (5m) \
is revoked then.";

/// `credd doctor --help`.
pub const DOCTOR: &str = "Prints each check with ok, FAIL (and its fix) or skip; exits 1 when any fails. \
Detects docker's rules shadowing credd's (a container publishing port 80 would receive the callers' tokens). \
Reading the nat table needs root: without it that check is skipped and the port-80 probe from this host stands in.\n\n\
Examples:\n  credd doctor\n  sudo credd doctor";

/// `credd audit --help`.
pub const AUDIT: &str = "The log is STATE_DIR/audit.log (0600), rotated at 1 MiB with 3 old files kept; \
it never holds a secret, only token ids (see `credd token list`). Vends alike in every field \
within one second share a line: VENDS (`count` in --json, absent when 1) says how many. Lines are \
written about a second after their vends, and at once when the daemon stops.\n\nExamples:\n  credd audit --since 1h\n  credd audit --json | jq .";

/// `credd decode-message --help`.
pub const DECODE_MESSAGE: &str = "Calls sts:DecodeAuthorizationMessage with PROFILE's credentials (an IAM user's bare keys sign it themselves; the profile needs sts:DecodeAuthorizationMessage) and prints the decoded JSON, pretty, with the denied action and resource first and then the rest as STS returned it. MESSAGE `-` reads the message from standard input.\n\n\
Examples:\n  credd decode-message dev 'AbCdEf...'\n  pbpaste | credd decode-message dev -";

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        crate::cli::Cli::command().debug_assert();
    }

    #[test]
    fn the_top_help_sums_up_every_exit_code() {
        let codes = super::TOP
            .split("Exit codes:")
            .nth(1)
            .expect("credd --help has an exit-code summary");
        let summary = &codes[..codes.find("\n\n").unwrap()];
        for (code, _) in crate::exit::TABLE {
            assert!(
                summary.contains(&format!("{code} ")) || summary.contains(&format!("{code} when")),
                "exit code {code} is missing from credd --help: {summary}"
            );
        }
    }
}
