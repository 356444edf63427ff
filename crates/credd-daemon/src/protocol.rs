//! The control protocol's vocabulary, shared by the daemon (which answers)
//! and the CLI (which asks): one [`Request`] per connection, answered by
//! one [`Envelope`] whose `result` is the reply type named on each request.
//! No I/O here: the socket, the peer check and the client live in
//! [`crate::control`].
//!
//! The bytes on the wire are what they were when the replies were built as
//! `json!` values: the daemon turns a reply into a `serde_json::Value` (whose
//! maps are sorted by key) before writing it, so field order in these
//! structs does not matter, and `None` is written as `null`. A test below
//! pins a few replies' bytes.

use credd_core::overlay::{Findings, ProfileSettings};
use credd_core::token::TokenRecord;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What the CLI can ask. Requests are never logged (an MFA code travels here).
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    Ping,
    Status,
    Profiles,
    Credentials {
        profile: String,
    },
    /// `credd credential-process`: [`Request::Credentials`] for a tool that
    /// shows the user nothing (an IDE): when the profile needs `credd mfa`
    /// or `credd login`, the daemon also raises a desktop notification.
    ProcessCredentials {
        profile: String,
    },
    Mfa {
        profile: String,
        code: String,
    },
    MfaSerial {
        profile: String,
    },
    TokenIssue {
        profiles: Vec<String>,
        ttl_secs: Option<u64>,
        label: String,
        /// A container's token: the engine (as the daemon named it in
        /// [`Request::Endpoint`]'s `docker_engine`) whose watch revokes it
        /// when its container is removed.
        #[serde(default)]
        docker_engine: Option<String>,
    },
    /// `credd docker ps`: the containers holding live tokens.
    DockerPs,
    TokenList,
    /// By id; a whole token value in `id` is taken as [`Request::TokenRevokeBy`]'s
    /// `token` (and never repeated in the answer).
    TokenRevoke {
        id: String,
    },
    /// Exactly one of: `token`, the whole value (checked by digest); `label`,
    /// every live token with it; `all`.
    TokenRevokeBy {
        #[serde(default)]
        token: Option<String>,
        #[serde(default)]
        label: Option<String>,
        #[serde(default)]
        all: bool,
    },
    Whoami {
        profile: String,
    },
    /// `credd login --profile P` for a SAML profile: renew the profile's
    /// base now, past any backoff (its helper can run unattended again).
    Refresh {
        profile: String,
    },
    Endpoint {
        profile: Option<String>,
    },
    Reload,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only the operation name: arguments may include an MFA code.
        let v = serde_json::to_value(self).unwrap_or_default();
        write!(f, "Request({})", v["op"].as_str().unwrap_or("?"))
    }
}

/// Every answer: `{"ok": true, "result": ...}` or `{"ok": false, "error":
/// "..."}`, the error a message for a person; a refusal that needs the
/// person (an MFA code, a sign-in) also carries [`Needs`] in `needs`.
/// The protocol is versioned with the binary (the CLI and the daemon are
/// one executable): `needs` is added without changing any other byte, an
/// older CLI ignores it, and a newer CLI facing an older daemon sees none
/// and shows the message as it is.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs: Option<Needs>,
}

/// What a refusal needs from the person, typed (issue 14), so that a
/// program (the CLI, an SDK client reading the HTTP 503 body) decides from
/// it and never from the message's words. Set by the broker where it
/// decides (`broker/needs.rs`); the same object in the control protocol's
/// error envelope and in the container endpoint's JSON error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Needs {
    pub kind: NeedsKind,
    /// What it is for: the MFA session's key profile (the one with
    /// `mfa_serial`), the sso-session's name (or a legacy profile's start
    /// URL), the `login_session` ARN, the SAML profile, or the profile whose
    /// keys are in the locked store.
    pub session: String,
    /// The one command that gives it: `credd mfa dev`, `credd login work`,
    /// `credd login --profile me`, `credd keys list` (after unlocking).
    pub command: String,
}

/// What kind of help [`Needs`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NeedsKind {
    /// An MFA code (`credd mfa P`).
    Mfa,
    /// A sign-in (`credd login ...`): IAM Identity Center, `aws login`, SAML.
    SignIn,
    /// The OS keychain holding the profile's keys is locked: unlock it.
    KeychainUnlock,
    /// A kind this binary does not know (a newer daemon): the command
    /// still says what to run.
    #[serde(other)]
    Other,
}

/// Why the daemon refused a request. On the wire the message travels (as
/// it always has), with [`Needs`] when the person can fix it; the kind is
/// for the daemon's own handling.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ControlError {
    pub kind: ErrorKind,
    pub message: String,
    pub needs: Option<Needs>,
}

/// What kind of refusal a [`ControlError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request cannot be read, or its arguments do not make sense.
    BadRequest,
    /// No such profile (or token, or container) here.
    NotFound,
    /// The profile needs the user: `credd mfa` or `credd login`.
    NeedsUser,
    /// Credentials could not be had (upstream refused or failed, or the
    /// profile is misconfigured).
    Unavailable,
    /// The daemon cannot do it here (no docker watch, a store it cannot write).
    Unsupported,
}

impl ControlError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            needs: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
}

/// [`Request::Ping`] and [`Request::Reload`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    pub pong: bool,
}

/// What the daemon found in the AWS files, or why it could not look.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Files {
    Found(Findings),
    Unreadable { error: String },
}

impl Default for Files {
    fn default() -> Self {
        Files::Found(Findings::default())
    }
}

impl Files {
    /// The findings, empty when the files could not be read.
    pub fn findings(&self) -> Findings {
        match self {
            Files::Found(f) => f.clone(),
            Files::Unreadable { .. } => Findings::default(),
        }
    }
}

/// The daemon itself, in [`StatusReply`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaemonInfo {
    pub version: String,
    pub pid: u32,
    pub started: String,
    pub container_url: String,
    pub imds_url: Option<String>,
    pub extra_urls: Vec<String>,
    pub token_failures: u64,
    pub config_error: Option<String>,
    pub config_notes: Vec<String>,
    /// The docker watch, when it is on.
    pub docker_watch: Option<DockerWatchStatus>,
}

/// The docker watch in [`DaemonInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerWatchStatus {
    /// The engine watched (`unix:///path`), when known.
    pub engine: Option<String>,
    /// What the watch is doing, for a person (`watching`, why not...).
    pub state: String,
    pub claim_within_secs: u64,
}

/// [`Request::DockerPs`]: the live tokens bound to the watched engine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DockerPs {
    pub engine: Option<String>,
    /// Why the engine could not be asked (the rows are then what credd recorded).
    pub error: Option<String>,
    pub containers: Vec<ContainerRow>,
}

/// One token of [`DockerPs`], with its container as the engine describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRow {
    /// The container's short id.
    pub container: Option<String>,
    pub container_id: Option<String>,
    pub name: Option<String>,
    pub image: Option<String>,
    pub state: Option<String>,
    /// The token's id (never its value).
    pub token: String,
    pub profiles: Vec<String>,
    pub label: String,
    pub token_age_secs: i64,
    pub expires: Option<String>,
    /// When an unclaimed token is revoked (no container carries it yet).
    pub unclaimed_revoked_at: Option<String>,
}

/// One profile's row in [`StatusReply`], as the daemon's `status.rs`
/// renders it from the refresh engine's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileRow {
    pub name: String,
    /// `fresh`, `refreshing`, `idle`, `needs MFA`, `login required`,
    /// `failing`, `expired`, `misconfigured`.
    pub state: String,
    pub chain: Option<String>,
    pub region: Option<String>,
    pub expires: Option<String>,
    pub expires_in_secs: Option<i64>,
    pub next_refresh: Option<String>,
    pub last_error: Option<String>,
    pub notes: Vec<String>,
}

/// Where an SSO session stands, for `credd status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// No token in the cache.
    LoggedOut,
    /// A usable token.
    Active,
    /// The token expired and cannot be refreshed, or a refresh was refused.
    Ended,
    /// The cache file cannot be read; it is left as it is.
    CacheCorrupt,
}

impl SessionState {
    /// As people read it: `logged out`, `active`, `ended`, `cache corrupt`.
    pub fn label(self) -> &'static str {
        match self {
            SessionState::LoggedOut => "logged out",
            SessionState::Active => "active",
            SessionState::Ended => "ended",
            SessionState::CacheCorrupt => "cache corrupt",
        }
    }
}

/// One SSO session's row in [`StatusReply`], as the daemon's `status.rs`
/// renders it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRow {
    pub session: String,
    pub start_url: String,
    pub region: String,
    pub state: SessionState,
    pub token_expires: Option<String>,
    pub next_refresh: Option<String>,
    pub refreshable: bool,
    pub last_error: Option<String>,
    pub login_command: String,
}

/// [`Request::Status`] and [`Request::Profiles`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReply {
    pub files: Files,
    pub daemon: DaemonInfo,
    pub profiles: Vec<ProfileRow>,
    pub sso_sessions: Vec<SessionRow>,
    /// `aws login` sessions; left out when there are none, so the document
    /// of a daemon without them is what it always was.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub login_sessions: Vec<LoginSessionRow>,
    /// Every session a person keeps alive (MFA, SSO and `aws login`
    /// sessions), in one shape; left out when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<UserSessionRow>,
}

/// One session that needs a person when it ends, in [`StatusReply`]
/// (`broker/user_sessions.rs`): the same fields for every kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSessionRow {
    /// `mfa`, `sso` or `login`.
    pub kind: String,
    /// The MFA session's key profile, the sso-session's name (or start
    /// URL), the `login_session` ARN.
    pub name: String,
    /// The MFA device's serial (MFA sessions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// The profiles served from it (directly or through roles).
    pub profiles: Vec<String>,
    /// When it ends, when known (an Identity Center session that refreshes
    /// its token ends when its administrator's limit says, which the cache
    /// does not record).
    pub ends: Option<String>,
    pub ends_in_secs: Option<i64>,
    /// `ends` is an estimate: an Identity Center session's sign-in plus the
    /// configured session length (clients are never told the real one).
    #[serde(default)]
    pub ends_estimated: bool,
    /// How an estimated end was made: the sign-in, the length and where
    /// the length is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_source: Option<String>,
    /// What it will need then, with the command: "a new MFA code: `credd mfa dev`".
    pub needed_then: String,
    /// The one command that renews it.
    pub command: String,
    /// `active`, `ended`, `needs MFA`, `login required`, `logged out`,
    /// `cache corrupt`, `refreshing`, `failing`, `idle`.
    pub state: String,
    /// A profile on it was served in the last two hours (only such
    /// sessions are warned about).
    pub in_use: bool,
}

/// One `aws login` session's row in [`StatusReply`] (`broker/login.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginSessionRow {
    /// The `login_session` value: the console identity's ARN.
    pub session: String,
    /// `active`, `refreshing`, `failing`, `login required`, `idle`.
    pub state: String,
    pub credentials_expire: Option<String>,
    pub expires_in_secs: Option<i64>,
    /// When credd last got credentials for it (from the file or a refresh).
    pub last_refresh: Option<String>,
    pub next_refresh: Option<String>,
    /// The profiles served from it (directly or through roles).
    pub profiles: Vec<String>,
    pub last_error: Option<String>,
    pub login_command: String,
}

/// [`Request::Mfa`]: when the new MFA session ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaStarted {
    pub expires: String,
}

/// [`Request::MfaSerial`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaSerial {
    pub serial: String,
}

/// [`Request::TokenIssue`]: the token (its only appearance) and its record.
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenIssued {
    pub token: String,
    pub record: TokenRecord,
}

impl std::fmt::Debug for TokenIssued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssued")
            .field("token", &"** redacted **")
            .field("record", &self.record.id)
            .finish()
    }
}

/// [`Request::TokenList`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenList {
    pub tokens: Vec<TokenRecord>,
}

/// [`Request::TokenRevoke`] and [`Request::TokenRevokeBy`]: the first id
/// revoked and all of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    pub revoked: Option<String>,
    pub ids: Vec<String>,
}

/// [`Request::Whoami`], in STS's `GetCallerIdentity` names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    #[serde(rename = "Account")]
    pub account: String,
    #[serde(rename = "Arn")]
    pub arn: String,
    #[serde(rename = "UserId")]
    pub user_id: String,
}

/// [`Request::Refresh`]: when the renewed credentials expire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refreshed {
    pub expires: String,
}

/// [`Request::Endpoint`]: where a child of `credd exec` (or a container)
/// is pointed, and the profile's settings for its overlay config.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointReply {
    pub container_url: String,
    pub imds_url: Option<String>,
    pub imds_profile: Option<String>,
    pub extra_urls: Vec<String>,
    pub docker_engine: Option<String>,
    pub docker_claim_within_secs: Option<u64>,
    pub region: Option<String>,
    pub settings: Option<ProfileSettings>,
    pub files: Files,
}

/// [`Request::Credentials`] as a client reads it (the wire shape is the
/// `credential_process` document of [`credd_core`], `Version` 1).
#[derive(Clone, Serialize, Deserialize)]
pub struct Credentials {
    #[serde(rename = "AccessKeyId")]
    pub access_key_id: String,
    #[serde(rename = "SecretAccessKey")]
    pub secret_access_key: String,
    #[serde(rename = "SessionToken")]
    pub session_token: String,
    #[serde(rename = "Expiration")]
    pub expiration: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"** redacted **")
            .field("session_token", &"** redacted **")
            .field("expiration", &self.expiration)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes the daemon writes for `reply` (as `control::handle` does).
    fn wire<T: Serialize>(reply: &T) -> String {
        let env = Envelope {
            ok: true,
            result: Some(serde_json::to_value(reply).unwrap()),
            error: None,
            needs: None,
        };
        serde_json::to_string(&serde_json::to_value(env).unwrap()).unwrap()
    }

    #[test]
    fn replies_keep_their_bytes_on_the_wire() {
        assert_eq!(
            wire(&Pong { pong: true }),
            r#"{"ok":true,"result":{"pong":true}}"#
        );
        assert_eq!(
            wire(&Revoked {
                revoked: Some("0123456789abcdef".into()),
                ids: vec!["0123456789abcdef".into()],
            }),
            r#"{"ok":true,"result":{"ids":["0123456789abcdef"],"revoked":"0123456789abcdef"}}"#
        );
        assert_eq!(
            wire(&Revoked {
                revoked: None,
                ids: vec![]
            }),
            r#"{"ok":true,"result":{"ids":[],"revoked":null}}"#
        );
        assert_eq!(
            wire(&Identity {
                account: "111122223333".into(),
                arn: "arn:aws:iam::111122223333:user/u".into(),
                user_id: "AIDA".into(),
            }),
            r#"{"ok":true,"result":{"Account":"111122223333","Arn":"arn:aws:iam::111122223333:user/u","UserId":"AIDA"}}"#
        );
        assert_eq!(
            wire(&MfaStarted {
                expires: "2026-01-01T00:00:00Z".into()
            }),
            r#"{"ok":true,"result":{"expires":"2026-01-01T00:00:00Z"}}"#
        );
        assert_eq!(
            wire(&EndpointReply {
                container_url: "http://127.0.0.1:9911/v1/credentials".into(),
                imds_url: None,
                imds_profile: None,
                extra_urls: vec![],
                docker_engine: None,
                docker_claim_within_secs: None,
                region: Some("eu-west-1".into()),
                settings: None,
                files: Files::Unreadable {
                    error: "bad".into()
                },
            }),
            concat!(
                r#"{"ok":true,"result":{"container_url":"http://127.0.0.1:9911/v1/credentials","#,
                r#""docker_claim_within_secs":null,"docker_engine":null,"extra_urls":[],"#,
                r#""files":{"error":"bad"},"imds_profile":null,"imds_url":null,"#,
                r#""region":"eu-west-1","settings":null}}"#
            )
        );
        assert_eq!(
            wire(&DockerPs {
                engine: Some("unix:///var/run/docker.sock".into()),
                error: None,
                containers: vec![ContainerRow {
                    container: None,
                    container_id: None,
                    name: None,
                    image: None,
                    state: None,
                    token: "0123456789abcdef".into(),
                    profiles: vec!["dev".into()],
                    label: "docker dev".into(),
                    token_age_secs: 3,
                    expires: None,
                    unclaimed_revoked_at: Some("2026-01-01T00:01:00Z".into()),
                }],
            }),
            concat!(
                r#"{"ok":true,"result":{"containers":[{"container":null,"container_id":null,"#,
                r#""expires":null,"image":null,"label":"docker dev","name":null,"profiles":["dev"],"#,
                r#""state":null,"token":"0123456789abcdef","token_age_secs":3,"#,
                r#""unclaimed_revoked_at":"2026-01-01T00:01:00Z"}],"#,
                r#""engine":"unix:///var/run/docker.sock","error":null}}"#
            )
        );
        let err = Envelope {
            ok: false,
            result: None,
            error: Some("unknown profile 'x'".into()),
            needs: None,
        };
        assert_eq!(
            serde_json::to_string(&serde_json::to_value(err).unwrap()).unwrap(),
            r#"{"error":"unknown profile 'x'","ok":false}"#
        );
    }

    #[test]
    fn a_refusal_that_needs_the_user_carries_it_typed_and_reads_back() {
        for (kind, session, command, text) in [
            (
                NeedsKind::Mfa,
                "base",
                "credd mfa dev",
                r#"{"error":"MFA code needed: run `credd mfa dev`","needs":{"command":"credd mfa dev","kind":"mfa","session":"base"},"ok":false}"#,
            ),
            (
                NeedsKind::SignIn,
                "work",
                "credd login work",
                r#"{"error":"MFA code needed: run `credd mfa dev`","needs":{"command":"credd login work","kind":"sign_in","session":"work"},"ok":false}"#,
            ),
            (
                NeedsKind::KeychainUnlock,
                "ops",
                "credd keys list",
                r#"{"error":"MFA code needed: run `credd mfa dev`","needs":{"command":"credd keys list","kind":"keychain_unlock","session":"ops"},"ok":false}"#,
            ),
        ] {
            let needs = Needs {
                kind,
                session: session.into(),
                command: command.into(),
            };
            let env = Envelope {
                ok: false,
                result: None,
                error: Some("MFA code needed: run `credd mfa dev`".into()),
                needs: Some(needs.clone()),
            };
            let wire = serde_json::to_string(&serde_json::to_value(env).unwrap()).unwrap();
            assert_eq!(wire, text);
            let back: Envelope = serde_json::from_str(&wire).unwrap();
            assert_eq!(back.needs, Some(needs));
        }
        // A kind from a newer daemon still reads, command and all.
        let newer: Envelope = serde_json::from_str(
            r#"{"ok":false,"error":"x","needs":{"kind":"touch_key","session":"s","command":"credd touch s"}}"#,
        )
        .unwrap();
        let n = newer.needs.unwrap();
        assert_eq!(
            (n.kind, n.command.as_str()),
            (NeedsKind::Other, "credd touch s")
        );
        // An older daemon's refusal has none.
        let older: Envelope = serde_json::from_str(r#"{"ok":false,"error":"x"}"#).unwrap();
        assert_eq!(older.needs, None);
    }

    #[test]
    fn the_refresh_request_and_its_reply_on_the_wire() {
        let req = Request::Refresh {
            profile: "corp".into(),
        };
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"op":"refresh","profile":"corp"}"#
        );
        assert_eq!(format!("{req:?}"), "Request(refresh)");
        assert_eq!(
            wire(&Refreshed {
                expires: "2026-11-23T10:00:00Z".into()
            }),
            r#"{"ok":true,"result":{"expires":"2026-11-23T10:00:00Z"}}"#
        );
    }

    #[test]
    fn a_status_reply_reads_back_as_it_was_written() {
        let text = r#"{"daemon":{"config_error":null,"config_notes":[],"container_url":"http://127.0.0.1:9911/v1/credentials","docker_watch":null,"extra_urls":[],"imds_url":null,"pid":7,"started":"2026-01-01T00:00:00Z","token_failures":0,"version":"0.1.0"},"files":{"credentials_file":"/h/.aws/credentials","credentials_sections":["a"],"shadows":[]},"profiles":[{"chain":"a -> b","expires":null,"expires_in_secs":null,"last_error":null,"name":"b","next_refresh":null,"notes":[],"region":null,"state":"idle"}],"sso_sessions":[{"last_error":null,"login_command":"credd login s","next_refresh":null,"refreshable":true,"region":"us-east-1","session":"s","start_url":"https://x.awsapps.com/start","state":"active","token_expires":null}]}"#;
        let reply: StatusReply = serde_json::from_str(text).unwrap();
        assert_eq!(reply.profiles[0].state, "idle");
        assert_eq!(reply.files.findings().credentials_sections, ["a"]);
        let again = serde_json::to_string(&serde_json::to_value(&reply).unwrap()).unwrap();
        assert_eq!(again, text);
    }

    #[test]
    fn login_session_rows_are_added_without_changing_the_rest() {
        let text = r#"{"daemon":{"config_error":null,"config_notes":[],"container_url":"http://127.0.0.1:9911/v1/credentials","docker_watch":null,"extra_urls":[],"imds_url":null,"pid":7,"started":"2026-01-01T00:00:00Z","token_failures":0,"version":"0.1.0"},"files":{"credentials_file":"/h/.aws/credentials","credentials_sections":[],"shadows":[]},"login_sessions":[{"credentials_expire":"2026-01-01T00:15:00Z","expires_in_secs":900,"last_error":null,"last_refresh":"2026-01-01T00:00:00Z","login_command":"credd login --profile me","next_refresh":"2026-01-01T00:07:30Z","profiles":["admin","me"],"session":"arn:aws:iam::123456789012:user/dev","state":"active"}],"profiles":[],"sso_sessions":[]}"#;
        let reply: StatusReply = serde_json::from_str(text).unwrap();
        assert_eq!(reply.login_sessions[0].profiles, ["admin", "me"]);
        let again = serde_json::to_string(&serde_json::to_value(&reply).unwrap()).unwrap();
        assert_eq!(again, text);
    }

    #[test]
    fn a_token_and_secret_keys_stay_out_of_debug() {
        let c = Credentials {
            access_key_id: "ASIA".into(),
            secret_access_key: "canary-secret".into(),
            session_token: "canary-token".into(),
            expiration: "2026-01-01T00:00:00Z".into(),
        };
        let d = format!("{c:?}");
        assert!(!d.contains("canary") && d.contains("ASIA"), "{d}");
    }
}
