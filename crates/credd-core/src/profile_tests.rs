//! Unit tests of [`super`] (profile.rs), in their own file to keep that one
//! about the code; they see its private items as an inline module would.

use super::*;

use super::raw_from as raw;

const ROLE_A: &str = "arn:aws:iam::111111111111:role/A";
const ROLE_B: &str = "arn:aws:iam::222222222222:role/B";

fn base_keys() -> (&'static str, &'static [(&'static str, &'static str)]) {
    (
        "base",
        &[
            ("aws_access_key_id", "AKIAEXAMPLE"),
            ("aws_secret_access_key", "secret"),
        ],
    )
}

#[test]
fn static_keys_become_a_session() {
    let r = raw(&[base_keys()]);
    let p = resolve(&r, "base").unwrap();
    match &p.base {
        Base::Session(s) => {
            assert_eq!(s.duration_secs, 43_200);
            assert!(s.mfa.is_none());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(p.serving_node().0, "session:AKIAEXAMPLE");
}

#[test]
fn mfa_session_is_shared_by_profiles_on_the_same_keys() {
    let r = raw(&[
        base_keys(),
        (
            "a",
            &[
                ("role_arn", ROLE_A),
                ("source_profile", "base"),
                ("mfa_serial", "arn:aws:iam::1:mfa/me"),
            ],
        ),
        (
            "b",
            &[
                ("role_arn", ROLE_B),
                ("source_profile", "base"),
                ("mfa_serial", "arn:aws:iam::1:mfa/me"),
            ],
        ),
    ]);
    let a = resolve(&r, "a").unwrap().nodes();
    let b = resolve(&r, "b").unwrap().nodes();
    assert_eq!(a[0].id, b[0].id);
    assert_eq!(a[0].id.0, "mfa:AKIAEXAMPLE:arn:aws:iam::1:mfa/me");
    assert_ne!(a[1].id, b[1].id);
    assert_eq!(a[1].parent.as_ref(), Some(&a[0].id));
}

#[test]
fn chains_of_any_depth_and_the_one_hour_cap() {
    let r = raw(&[
        base_keys(),
        (
            "a",
            &[
                ("role_arn", ROLE_A),
                ("source_profile", "base"),
                ("duration_seconds", "7200"),
            ],
        ),
        (
            "b",
            &[
                ("role_arn", ROLE_B),
                ("source_profile", "a"),
                ("duration_seconds", "7200"),
                ("region", "eu-west-1"),
            ],
        ),
    ]);
    let p = resolve(&r, "b").unwrap();
    assert_eq!(p.roles.len(), 2);
    assert_eq!(p.roles[0].duration_secs, Some(7200));
    assert_eq!(p.roles[0].capped_from, None);
    assert_eq!(p.roles[1].duration_secs, Some(3600));
    assert_eq!(p.roles[1].capped_from, Some(7200));
    assert_eq!(p.region.as_deref(), Some("eu-west-1"));
    assert!(p.notes()[0].contains("caps chained role sessions at 1h"));
    assert_eq!(p.nodes().len(), 3);
}

#[test]
fn cycle_is_a_clear_error() {
    let r = raw(&[
        ("a", &[("role_arn", ROLE_A), ("source_profile", "b")]),
        ("b", &[("role_arn", ROLE_B), ("source_profile", "a")]),
    ]);
    let e = resolve(&r, "a").unwrap_err();
    assert_eq!(
        e.to_string(),
        "profile 'a': source_profile cycle: a -> b -> a"
    );
}

#[test]
fn self_source_with_keys_is_allowed() {
    let r = raw(&[(
        "me",
        &[
            ("aws_access_key_id", "AKIAX"),
            ("aws_secret_access_key", "s"),
            ("role_arn", ROLE_A),
            ("source_profile", "me"),
        ],
    )]);
    let p = resolve(&r, "me").unwrap();
    assert_eq!(p.roles.len(), 1);
}

#[test]
fn typos_and_unsupported_sources_are_named() {
    let r = raw(&[
        ("typo", &[("role_arn", ROLE_A), ("source_profil", "base")]),
        (
            "missing",
            &[("role_arn", ROLE_A), ("source_profile", "nope")],
        ),
        (
            "imds",
            &[
                ("role_arn", ROLE_A),
                ("credential_source", "Ec2InstanceMetadata"),
            ],
        ),
        ("empty", &[("region", "eu-west-1")]),
        ("half", &[("aws_access_key_id", "AKIA")]),
        (
            "badarn",
            &[
                ("role_arn", "arn:aws:iam::1:user/x"),
                ("source_profile", "half"),
            ],
        ),
        (
            "sso",
            &[
                ("sso_session", "work"),
                ("sso_account_id", "1"),
                ("sso_role_name", "R"),
            ],
        ),
        (
            "baddur",
            &[
                ("role_arn", ROLE_A),
                ("credential_source", "Environment"),
                ("duration_seconds", "10"),
            ],
        ),
    ]);
    let msg = |p: &str| resolve(&r, p).unwrap_err().to_string();
    assert!(
        msg("typo").contains("none of source_profile"),
        "{}",
        msg("typo")
    );
    assert!(msg("missing").contains("'nope' does not exist"));
    assert!(msg("imds").contains("Ec2InstanceMetadata is not supported"));
    assert!(msg("empty").contains("has no credentials"));
    assert!(msg("half").contains("without aws_secret_access_key"));
    assert!(msg("badarn").contains("role_arn"));
    assert!(msg("sso").contains("12-digit account id"), "{}", msg("sso"));
    assert!(
        msg("baddur").contains("between 900 and 43200"),
        "{}",
        msg("baddur")
    );
    assert!(resolve(&r, "nope")
        .unwrap_err()
        .to_string()
        .contains("no such profile"));
}

#[test]
fn mfa_durations_follow_aws_rules() {
    let r = raw(&[
        (
            "root",
            &[
                ("aws_access_key_id", "AKIAR"),
                ("aws_secret_access_key", "s"),
                ("mfa_serial", "arn:aws:iam::1:mfa/root-account-mfa-device"),
            ],
        ),
        (
            "long",
            &[
                ("aws_access_key_id", "AKIAL"),
                ("aws_secret_access_key", "s"),
                ("mfa_serial", "arn:aws:iam::1:mfa/me"),
                ("credd_session_duration", "36h"),
                ("mfa_process", "ykman oath accounts code -s aws"),
            ],
        ),
        (
            "toolong",
            &[
                ("aws_access_key_id", "AKIAT"),
                ("aws_secret_access_key", "s"),
                ("credd_session_duration", "37h"),
            ],
        ),
    ]);
    match resolve(&r, "root").unwrap().base {
        Base::Session(s) => assert!(s.root && s.duration_secs == 3600),
        b => panic!("{b:?}"),
    }
    match resolve(&r, "long").unwrap().base {
        Base::Session(s) => {
            assert_eq!(s.duration_secs, 129_600);
            assert_eq!(
                s.mfa.unwrap().process.as_deref(),
                Some("ykman oath accounts code -s aws")
            );
        }
        b => panic!("{b:?}"),
    }
    assert!(resolve(&r, "toolong")
        .unwrap_err()
        .to_string()
        .contains("129600"));
}

#[test]
fn web_identity_and_process_and_environment() {
    let r = raw(&[
        (
            "wi",
            &[("role_arn", ROLE_A), ("web_identity_token_file", "/t")],
        ),
        (
            "wi2",
            &[
                ("role_arn", ROLE_B),
                ("source_profile", "wi"),
                ("duration_seconds", "7200"),
            ],
        ),
        ("proc", &[("credential_process", "my-tool --json")]),
        (
            "env",
            &[
                ("role_arn", ROLE_A),
                ("credential_source", "Environment"),
                ("external_id", "x"),
            ],
        ),
    ]);
    assert!(matches!(
        resolve(&r, "wi").unwrap().base,
        Base::WebIdentity { .. }
    ));
    let wi2 = resolve(&r, "wi2").unwrap();
    assert_eq!(
        wi2.roles[0].capped_from,
        Some(7200),
        "web identity gives role credentials"
    );
    assert!(matches!(
        resolve(&r, "proc").unwrap().base,
        Base::Process { .. }
    ));
    let env = resolve(&r, "env").unwrap();
    assert_eq!(env.roles[0].external_id.as_deref(), Some("x"));
    assert_eq!(env.roles[0].session_name, "credd-env");
}

fn sso_raw(extra: &[(&str, &[(&str, &str)])]) -> RawProfiles {
    let mut sections: Vec<(&str, &[(&str, &str)])> = vec![
        (
            "sso-session work",
            &[
                ("sso_start_url", "https://d-1234567890.awsapps.com/start"),
                ("sso_region", "eu-west-1"),
                ("sso_registration_scopes", "sso:account:access"),
            ],
        ),
        (
            "dev",
            &[
                ("sso_session", "work"),
                ("sso_account_id", "111122223333"),
                ("sso_role_name", "PowerUserAccess"),
                ("region", "eu-west-1"),
            ],
        ),
        (
            "dev-admin",
            &[
                ("role_arn", "arn:aws:iam::444455556666:role/Admin"),
                ("source_profile", "dev"),
                ("duration_seconds", "7200"),
            ],
        ),
    ];
    sections.extend_from_slice(extra);
    raw(&sections)
}

#[test]
fn sso_profiles_and_roles_chained_on_them() {
    let r = sso_raw(&[]);
    let all = resolve_all(&r);
    assert_eq!(
        all.keys().collect::<Vec<_>>(),
        ["dev", "dev-admin"],
        "sso-session sections are not profiles"
    );
    let dev = resolve(&r, "dev").unwrap();
    let Base::Sso(role) = &dev.base else {
        panic!("{:?}", dev.base)
    };
    assert_eq!(role.session.name.as_deref(), Some("work"));
    assert_eq!(role.session.region, "eu-west-1");
    assert_eq!(
        role.session.scopes.as_deref(),
        Some(&["sso:account:access".to_string()][..])
    );
    assert_eq!(
        dev.serving_node().0,
        "sso:work:111122223333:PowerUserAccess"
    );
    let admin = resolve(&r, "dev-admin").unwrap();
    assert_eq!(admin.base, dev.base, "the SSO node is shared");
    // SSO role credentials are a role session: AWS caps a role chained
    // on one at 1 h.
    assert_eq!(admin.roles[0].capped_from, Some(7200));
    assert!(admin
        .describe_chain()
        .contains("IAM Identity Center PowerUserAccess"));
    assert_eq!(
        resolve(&r, "sso-session work").unwrap_err().kind,
        ConfigErrorKind::Unknown
    );
    let sessions = sso_sessions(&r);
    assert_eq!(sessions.len(), 1);
    assert!(sessions["work"].is_ok());
}

#[test]
fn legacy_sso_profiles_name_their_start_url() {
    let r = raw(&[(
        "old",
        &[
            ("sso_start_url", "https://d-1.awsapps.com/start"),
            ("sso_region", "us-east-1"),
            ("sso_account_id", "111122223333"),
            ("sso_role_name", "ReadOnly"),
        ],
    )]);
    let p = resolve(&r, "old").unwrap();
    let Base::Sso(role) = &p.base else { panic!() };
    assert_eq!(role.session.name, None);
    assert_eq!(role.session.cache_key(), "https://d-1.awsapps.com/start");
    assert_eq!(
        role.session.login_command("old"),
        "credd login --profile old"
    );
}

#[test]
fn sso_typos_get_errors_that_say_what_to_fix() {
    let r = sso_raw(&[
        (
            "sso-session typo",
            &[
                ("sso_start_url", "d-123.awsapps.com/start"),
                ("sso_region", "eu-west-1"),
            ],
        ),
        (
            "sso-session badregion",
            &[
                ("sso_start_url", "https://d-1.awsapps.com/start"),
                ("sso_region", "eu west 1"),
            ],
        ),
        (
            "sso-session noregion",
            &[("sso_start_url", "https://d-1.awsapps.com/start")],
        ),
        (
            "a",
            &[
                ("sso_session", "typo"),
                ("sso_account_id", "111122223333"),
                ("sso_role_name", "R"),
            ],
        ),
        (
            "b",
            &[
                ("sso_session", "badregion"),
                ("sso_account_id", "111122223333"),
                ("sso_role_name", "R"),
            ],
        ),
        (
            "c",
            &[
                ("sso_session", "noregion"),
                ("sso_account_id", "111122223333"),
                ("sso_role_name", "R"),
            ],
        ),
        (
            "d",
            &[("sso_session", "work"), ("sso_account_id", "111122223333")],
        ),
        (
            "e",
            &[
                ("sso_session", "work"),
                ("sso_account_id", "1111"),
                ("sso_role_name", "R"),
            ],
        ),
        (
            "f",
            &[
                ("sso_session", "wrok"),
                ("sso_account_id", "111122223333"),
                ("sso_role_name", "R"),
            ],
        ),
        (
            "g",
            &[
                ("sso_session", "work"),
                ("sso_region", "us-east-1"),
                ("sso_account_id", "111122223333"),
                ("sso_role_name", "R"),
            ],
        ),
        (
            "h",
            &[("sso_account_id", "111122223333"), ("sso_role_name", "R")],
        ),
    ]);
    let msg = |p: &str| resolve(&r, p).unwrap_err().to_string();
    assert!(
        msg("a").contains("https://d-1234567890.awsapps.com/start"),
        "{}",
        msg("a")
    );
    assert!(msg("b").contains("'eu west 1'"), "{}", msg("b"));
    assert!(msg("c").contains("has no sso_region"), "{}", msg("c"));
    assert!(msg("d").contains("sso_role_name"), "{}", msg("d"));
    assert!(msg("e").contains("12-digit"), "{}", msg("e"));
    assert!(msg("f").contains("no [sso-session wrok]"), "{}", msg("f"));
    // It names the sessions there are, so the typo is plain.
    assert!(
        msg("f").contains("it has: ") && msg("f").contains("work"),
        "{}",
        msg("f")
    );
    let mut bare = r.clone();
    bare.retain(|k, _| k.strip_prefix(SSO_SESSION_PREFIX).is_none());
    let none = resolve(&bare, "f").unwrap_err().to_string();
    assert!(none.contains("it has none"), "{none}");
    assert!(msg("g").contains("disagree"), "{}", msg("g"));
    assert!(
        msg("h").contains("sso_start_url and sso_region"),
        "{}",
        msg("h")
    );
    let sessions = sso_sessions(&r);
    assert!(sessions["typo"].is_err());
    assert!(sessions["work"].is_ok());
}

const LOGIN_USER: &str = "arn:aws:iam::123456789012:user/dev";
const SAML_IDP: &str = "arn:aws:iam::123456789012:saml-provider/Okta";

#[test]
fn login_session_profiles_share_one_node_and_chain_roles() {
    let r = raw(&[
        (
            "console",
            &[("login_session", LOGIN_USER), ("region", "eu-west-1")],
        ),
        ("console2", &[("login_session", LOGIN_USER)]),
        (
            "admin",
            &[
                ("role_arn", ROLE_A),
                ("source_profile", "console"),
                ("duration_seconds", "7200"),
            ],
        ),
        (
            "fed",
            &[(
                "login_session",
                "arn:aws:sts::123456789012:assumed-role/Admin/dev",
            )],
        ),
        (
            "fed-admin",
            &[
                ("role_arn", ROLE_A),
                ("source_profile", "fed"),
                ("duration_seconds", "7200"),
            ],
        ),
    ]);
    let a = resolve(&r, "console").unwrap();
    let b = resolve(&r, "console2").unwrap();
    let Base::Login(l) = &a.base else {
        panic!("{:?}", a.base)
    };
    assert_eq!(l.session.arn, LOGIN_USER);
    assert_eq!(a.base.node_id(), b.base.node_id(), "one node per session");
    let admin = resolve(&r, "admin").unwrap();
    assert_eq!(admin.base.node_id(), a.base.node_id());
    assert_eq!(admin.roles.len(), 1);
    assert_eq!(
        admin.roles[0].capped_from, None,
        "an IAM user is not a role"
    );
    let fed = resolve(&r, "fed-admin").unwrap();
    assert_eq!(
        fed.roles[0].capped_from,
        Some(7200),
        "a federated identity is a role session: chaining caps at 1 h"
    );
}

#[test]
fn saml_profiles_resolve_to_their_own_base_and_check_their_keys() {
    let r = raw(&[
        (
            "saml",
            &[
                ("role_arn", ROLE_A),
                ("credd_saml_principal_arn", SAML_IDP),
                ("credd_saml_process", "saml2aws print"),
                ("duration_seconds", "2h"),
            ],
        ),
        (
            "on-saml",
            &[("role_arn", ROLE_B), ("source_profile", "saml")],
        ),
        (
            "no-process",
            &[("role_arn", ROLE_A), ("credd_saml_principal_arn", SAML_IDP)],
        ),
        (
            "bad-idp",
            &[
                ("role_arn", ROLE_A),
                ("credd_saml_principal_arn", "okta"),
                ("credd_saml_process", "x"),
            ],
        ),
        (
            "too-long",
            &[
                ("role_arn", ROLE_A),
                ("credd_saml_principal_arn", SAML_IDP),
                ("credd_saml_process", "x"),
                ("duration_seconds", "13h"),
            ],
        ),
    ]);
    let p = resolve(&r, "saml").unwrap();
    let Base::Saml(s) = &p.base else {
        panic!("{:?}", p.base)
    };
    assert_eq!(
        (
            s.role_arn.as_str(),
            s.principal_arn.as_str(),
            s.process.as_str()
        ),
        (ROLE_A, SAML_IDP, "saml2aws print")
    );
    assert_eq!(s.duration_secs, Some(7200));
    assert!(p.roles.is_empty(), "the SAML role is the base, not a step");
    let chained = resolve(&r, "on-saml").unwrap();
    assert_eq!(chained.roles.len(), 1);
    assert_eq!(chained.base.node_id(), p.base.node_id());
    let e = resolve(&r, "no-process").unwrap_err().to_string();
    assert!(e.contains("credd_saml_process"), "{e}");
    let e = resolve(&r, "bad-idp").unwrap_err().to_string();
    assert!(e.contains("saml-provider"), "{e}");
    assert!(resolve(&r, "too-long").is_err());
}
