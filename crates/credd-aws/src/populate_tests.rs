//! Unit tests of [`super`] (populate.rs), in their own file to keep that one
//! about the code; they see its private items as an inline module would.

use super::*;

const SESSION_ONLY: &str =
    "[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = eu-west-1\n";

fn a(id: &str, account: &str, role: &str) -> Assignment {
    Assignment {
        account_id: id.to_string(),
        account_name: account.to_string(),
        role_name: role.to_string(),
    }
}

fn opts(region: Option<&str>) -> PopulateOptions {
    PopulateOptions {
        session: "corp".to_string(),
        prefix: None,
        region: region.map(str::to_string),
    }
}

fn two() -> Vec<Assignment> {
    vec![
        a("222222222222", "prod", "ReadOnly"),
        a("111111111111", "dev", "PowerUserAccess"),
    ]
}

#[test]
fn appends_after_everything_and_keeps_every_byte() {
    let existing = "# my settings\n\n[default]\nregion = us-east-1 ; home\n\n\
            [profile legacy]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = default\n\
            [ sso-session   corp ]\nsso_start_url = https://corp.awsapps.com/start\n\
            sso_region = eu-west-1\n\n[services local]\nsts =\n  endpoint_url = http://127.0.0.1:1\n\
            # trailing comment\n";
    let p = plan(existing, &two(), &opts(Some("eu-west-1"))).unwrap();
    assert!(p.new_text.starts_with(existing), "{}", p.new_text);
    assert_eq!(
        &p.new_text[existing.len()..],
        "\n# Added by `credd sso populate corp`\n\
             [profile dev-PowerUserAccess]\nsso_session = corp\nsso_account_id = 111111111111\n\
             sso_role_name = PowerUserAccess\nregion = eu-west-1\n\n\
             [profile prod-ReadOnly]\nsso_session = corp\nsso_account_id = 222222222222\n\
             sso_role_name = ReadOnly\nregion = eu-west-1\n"
    );
    assert_eq!(p.added, ["dev-PowerUserAccess", "prod-ReadOnly"]);
    assert!(p.updated.is_empty() && p.unchanged.is_empty() && p.skipped.is_empty());
    assert!(p.changes_anything());

    // The editor's own reading of its output agrees with what it wrote.
    let doc = Document::parse(&p.new_text);
    let sections = doc.profile_sections("prod-ReadOnly");
    let props = Document::merged(&sections);
    let values: Vec<(&str, &str)> = props
        .iter()
        .map(|(k, v)| (k.as_str(), v.value.as_str()))
        .collect();
    assert_eq!(
        values,
        [
            ("region", "eu-west-1"),
            ("sso_account_id", "222222222222"),
            ("sso_role_name", "ReadOnly"),
            ("sso_session", "corp"),
        ]
    );
}

#[test]
fn rerunning_changes_nothing() {
    for region in [None, Some("eu-west-1")] {
        let first = plan(SESSION_ONLY, &two(), &opts(region)).unwrap();
        let second = plan(&first.new_text, &two(), &opts(region)).unwrap();
        assert_eq!(second.new_text, first.new_text);
        assert!(second.added.is_empty() && second.updated.is_empty());
        assert!(!second.changes_anything());
        assert_eq!(second.unchanged, ["dev-PowerUserAccess", "prod-ReadOnly"]);
        assert!(second.skipped.is_empty(), "{:?}", second.skipped);
    }
}

#[test]
fn a_new_assignment_later_is_appended_in_a_second_block() {
    let first = plan(SESSION_ONLY, &two(), &opts(None)).unwrap();
    let mut more = two();
    more.push(a("333333333333", "audit", "ReadOnly"));
    let second = plan(&first.new_text, &more, &opts(None)).unwrap();
    assert!(second.new_text.starts_with(&first.new_text));
    assert_eq!(second.added, ["audit-ReadOnly"]);
    assert_eq!(second.unchanged, ["dev-PowerUserAccess", "prod-ReadOnly"]);
}

#[test]
fn crlf_stays_crlf() {
    let existing = "; work laptop\r\n[sso-session corp]\r\nsso_region = eu-west-1\r\n";
    let p = plan(existing, &two(), &opts(None)).unwrap();
    assert!(p.new_text.starts_with(existing));
    let added = &p.new_text[existing.len()..];
    assert_eq!(added.matches('\n').count(), added.matches("\r\n").count());
    assert!(added.starts_with("\r\n# Added by"), "{added:?}");
    assert!(added.contains("[profile prod-ReadOnly]\r\nsso_session = corp\r\n"));
    assert!(added.ends_with("sso_role_name = ReadOnly\r\n"));
    let again = plan(&p.new_text, &two(), &opts(None)).unwrap();
    assert_eq!(again.new_text, p.new_text);
}

#[test]
fn a_missing_final_newline_is_added_only_when_appending() {
    let existing = "[sso-session corp]\nsso_region = eu-west-1";
    let p = plan(existing, &two(), &opts(None)).unwrap();
    assert!(p.new_text.starts_with(existing));
    assert!(p.new_text[existing.len()..].starts_with("\n\n# Added by"));
    // Nothing to add: not even the newline.
    let p = plan(existing, &[], &opts(None)).unwrap();
    assert_eq!(p.new_text, existing);
}

#[test]
fn names_are_sanitized_and_keep_case() {
    let name =
        |acct: &str, role: &str, prefix: Option<&str>| profile_name(&a("1", acct, role), prefix);
    assert_eq!(name("Dev", "Admin", None), "Dev-Admin");
    assert_eq!(
        name("My  Team (EU)", "Power User", None),
        "My-Team-EU-Power-User"
    );
    assert_eq!(name("a.b_c", "r", Some("sso-")), "sso-a.b_c-r");
    assert_eq!(name(" Spaced ", "R", Some("x ")), "x-Spaced-R");
    assert_eq!(name("Zürich", "Ops", None), "Z-rich-Ops");
    assert_eq!(name("--lead", "trail--", None), "lead-trail");
    assert_eq!(name("", "", None), "");
}

#[test]
fn clashing_names_get_the_account_id() {
    let assignments = [
        a("111111111111", "Dev", "Admin"),
        a("222222222222", "Dev", "Admin"),
        a("222222222222", "Dev", "ReadOnly"),
        // The same pair twice is one profile.
        a("222222222222", "Dev", "ReadOnly"),
    ];
    let p = plan(SESSION_ONLY, &assignments, &opts(None)).unwrap();
    assert_eq!(
        p.added,
        [
            "Dev-111111111111-Admin",
            "Dev-222222222222-Admin",
            "Dev-ReadOnly"
        ]
    );
    assert!(p.new_text.contains(
        "[profile Dev-222222222222-Admin]\nsso_session = corp\nsso_account_id = 222222222222\n"
    ));
}

#[test]
fn a_clash_the_account_id_cannot_settle_is_skipped() {
    let assignments = [
        a("111111111111", "Dev", "Admin Access"),
        a("111111111111", "Dev", "Admin-Access"),
    ];
    let p = plan(SESSION_ONLY, &assignments, &opts(None)).unwrap();
    assert_eq!(p.added, ["Dev-111111111111-Admin-Access"]);
    assert_eq!(p.skipped.len(), 1);
    assert_eq!(p.skipped[0].0, "Dev-111111111111-Admin-Access");
    assert!(p.skipped[0].1.contains("already used"), "{:?}", p.skipped);
}

#[test]
fn a_missing_session_is_an_error_that_says_what_to_do() {
    let existing = "[default]\nregion = x\n[profile corp]\nsso_session = corp\n";
    let err = plan(existing, &two(), &opts(None)).unwrap_err();
    assert_eq!(
        err,
        PopulateError::NoSuchSession {
            session: "corp".into()
        }
    );
    let msg = err.to_string();
    assert!(msg.contains("aws configure sso-session"), "{msg}");
    assert!(msg.contains("[sso-session corp]"), "{msg}");
    // A commented-out or indented header is no header.
    for text in [
        "# [sso-session corp]\n",
        "[default]\n  [sso-session corp]\n",
    ] {
        assert!(plan(text, &two(), &opts(None)).is_err(), "{text:?}");
    }
}

#[test]
fn someone_elses_profile_is_skipped_and_untouched() {
    let existing = format!(
        "{SESSION_ONLY}[profile dev-PowerUserAccess]\nrole_arn = arn:aws:iam::1:role/x\n\
             source_profile = default\n\
             [profile prod-ReadOnly] ; mine\nsso_session = corp\nsso_account_id = 999999999999\n\
             sso_role_name = ReadOnly\n"
    );
    let p = plan(&existing, &two(), &opts(Some("eu-west-1"))).unwrap();
    assert_eq!(p.new_text, existing);
    assert!(p.added.is_empty() && p.updated.is_empty() && p.unchanged.is_empty());
    let skipped: BTreeMap<_, _> = p.skipped.iter().cloned().collect();
    assert_eq!(
        skipped["dev-PowerUserAccess"],
        "already exists with other settings (no sso_session, no sso_account_id, \
             no sso_role_name); left as it is"
    );
    assert_eq!(
        skipped["prod-ReadOnly"],
        "already exists with other settings (sso_account_id = 999999999999, \
             not 222222222222); left as it is"
    );
}

#[test]
fn region_is_set_in_place_on_our_own_profiles() {
    let existing = format!(
        "{SESSION_ONLY}[profile dev-PowerUserAccess]\nsso_session=corp\n\
             sso_account_id = 111111111111\nsso_role_name = PowerUserAccess\nRegion =  us-east-1\n\
             \n# about prod\n[profile prod-ReadOnly]\nsso_session = corp\n\
             sso_account_id = 222222222222\nsso_role_name = ReadOnly\n# end of prod\n\n\
             [profile other]\nregion = us-east-1"
    );
    let p = plan(&existing, &two(), &opts(Some("eu-west-1"))).unwrap();
    assert_eq!(p.updated, ["dev-PowerUserAccess", "prod-ReadOnly"]);
    assert!(p.added.is_empty());
    assert_eq!(
            p.new_text,
            format!(
                "{SESSION_ONLY}[profile dev-PowerUserAccess]\nsso_session=corp\n\
                 sso_account_id = 111111111111\nsso_role_name = PowerUserAccess\nRegion =  eu-west-1\n\
                 \n# about prod\n[profile prod-ReadOnly]\nsso_session = corp\n\
                 sso_account_id = 222222222222\nsso_role_name = ReadOnly\nregion = eu-west-1\n\
                 # end of prod\n\n[profile other]\nregion = us-east-1"
            )
        );
    // Without --region an existing region is nobody's business.
    let p = plan(&existing, &two(), &opts(None)).unwrap();
    assert_eq!(p.new_text, existing);
    assert_eq!(p.unchanged, ["dev-PowerUserAccess", "prod-ReadOnly"]);
}

#[test]
fn region_added_to_a_last_line_without_newline_keeps_that() {
    let existing = format!(
        "{SESSION_ONLY}[profile dev-PowerUserAccess]\nsso_session = corp\n\
             sso_account_id = 111111111111\nsso_role_name = PowerUserAccess"
    );
    let one = [a("111111111111", "dev", "PowerUserAccess")];
    let p = plan(&existing, &one, &opts(Some("eu-west-1"))).unwrap();
    assert_eq!(p.new_text, format!("{existing}\nregion = eu-west-1"));
}

#[test]
fn region_with_a_comment_is_left_to_the_user() {
    let existing = format!(
        "{SESSION_ONLY}[profile dev-PowerUserAccess]\nsso_session = corp\n\
             sso_account_id = 111111111111\nsso_role_name = PowerUserAccess\n\
             region = us-east-1 # for latency\n"
    );
    let one = [a("111111111111", "dev", "PowerUserAccess")];
    let p = plan(&existing, &one, &opts(Some("eu-west-1"))).unwrap();
    assert_eq!(p.new_text, existing);
    assert_eq!(p.skipped.len(), 1);
    assert!(p.skipped[0].1.contains("by hand"), "{:?}", p.skipped);
}

#[test]
fn diff_shows_the_added_profiles_under_the_label() {
    let p = plan(SESSION_ONLY, &two(), &opts(None)).unwrap();
    let d = diff(SESSION_ONLY, &p.new_text, "/home/u/.aws/config");
    assert!(
        d.starts_with("--- /home/u/.aws/config\n+++ /home/u/.aws/config\n"),
        "{d}"
    );
    assert!(d.contains("\n+[profile dev-PowerUserAccess]\n"), "{d}");
    assert!(d.contains("\n+[profile prod-ReadOnly]\n"), "{d}");
    assert!(
        d.contains("\n+# Added by `credd sso populate corp`\n"),
        "{d}"
    );
    assert!(!d.contains("\n-"), "only additions: {d}");
    assert_eq!(diff(&p.new_text, &p.new_text, "x"), "");
}

#[test]
fn apply_writes_through_a_symlink_and_keeps_a_backup() {
    let d = tempfile::tempdir().unwrap();
    let real = d.path().join("real-config");
    std::fs::write(&real, SESSION_ONLY).unwrap();
    let link = d.path().join("config");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let a = apply(&link, &two(), &opts(None)).unwrap();
    assert_eq!(a.target, real);
    assert_eq!(a.plan.added.len(), 2);
    assert!(std::fs::read_to_string(&real)
        .unwrap()
        .contains("[profile prod-ReadOnly]"));
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    let backup = a.backup.unwrap();
    assert_eq!(backup, d.path().join("real-config.credd-backup"));
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), SESSION_ONLY);
    // Again: nothing to do, nothing written, no new backup.
    let again = apply(&link, &two(), &opts(None)).unwrap();
    assert!(!again.plan.changes_anything() && again.backup.is_none());
    // A Latin-1 byte: a clear error naming the line, nothing written.
    let mut bad = SESSION_ONLY.as_bytes().to_vec();
    bad.extend_from_slice(b"# caf\xe9\n");
    std::fs::write(&real, &bad).unwrap();
    let e = apply(&link, &two(), &opts(None)).unwrap_err().to_string();
    assert!(e.contains("line 4 is not UTF-8"), "{e}");
    assert_eq!(std::fs::read(&real).unwrap(), bad);
}

#[tokio::test]
async fn the_sdk_reads_the_result_as_intended() {
    let existing = "# mine\n[default]\nregion = us-east-1\n\
            [sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = eu-west-1\n\
            [profile keep]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = default";
    let p = plan(existing, &two(), &opts(Some("eu-west-1"))).unwrap();

    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".aws")).unwrap();
    std::fs::write(home.path().join(".aws/config"), &p.new_text).unwrap();
    let env = crate::ProfileEnv {
        home: Some(home.path().to_path_buf()),
        ..Default::default()
    };
    let loaded = crate::load_profiles(&env).await.unwrap();
    let get = |profile: &str, key: &str| {
        loaded.raw[profile]
            .get(key)
            .map(String::as_str)
            .unwrap_or("<missing>")
            .to_string()
    };
    // The sso-session section is kept under its own key, beside the profiles.
    let session_key = credd_core::profile::sso_session_key("corp");
    assert_eq!(
        loaded.raw.keys().collect::<Vec<_>>(),
        [
            "default",
            "dev-PowerUserAccess",
            "keep",
            "prod-ReadOnly",
            session_key.as_str()
        ]
    );
    for (profile, account, role) in [
        ("dev-PowerUserAccess", "111111111111", "PowerUserAccess"),
        ("prod-ReadOnly", "222222222222", "ReadOnly"),
    ] {
        assert_eq!(get(profile, "sso_session"), "corp");
        assert_eq!(get(profile, "sso_account_id"), account);
        assert_eq!(get(profile, "sso_role_name"), role);
        assert_eq!(get(profile, "region"), "eu-west-1");
    }
    // The profile that had no final newline kept its settings.
    assert_eq!(get("keep", "source_profile"), "default");
    assert_eq!(get("keep", "region"), "<missing>");
}
