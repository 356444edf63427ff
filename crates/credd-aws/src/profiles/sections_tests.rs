//! Unit tests of [`super`] (sections.rs): the parse by sections is the
//! SDK's parse of the whole text, first time and after any change, and a
//! change is parsed alone.

use super::super::tests::parses;
use super::*;

/// Texts with what makes the SDK's merge more than one section each:
/// repeated sections, `[default]` and `[profile default]` both ways round,
/// names it drops, `[services]`, sub-properties, continued values, odd
/// case, comments before and after headers, CRLF, no last newline.
const TEXTS: &[&str] = &[
    "",
    "# only a comment\n",
    "[default]\nregion = from-plain-default\noutput = json\n\
     [profile default]\nregion = from-profile-default\n\
     [profile both]\nregion = config\nrole_arn = arn:aws:iam::1:role/C\nsource_profile = base\n\
     [profile both]\nmfa_serial = arn:aws:iam::1:mfa/second-section\nregion = again\n\
     [profile only-config]\ncredential_process = /bin/true\n\
     [profile   spaced  ]\nregion = x\n\
     [profile sub]\ns3 =\n  addressing_style = path\nregion = y\n\
     [not-prefixed]\nregion = ignored\n\
     [sso-session corp]\nsso_start_url = https://x.awsapps.com/start\nsso_region = eu-west-1\n\
     [sso-session corp]\nsso_region = us-east-2\n\
     [services local]\nsts =\n  endpoint_url = http://127.0.0.1:1\n",
    "[profile default]\nregion = first\n[default]\nregion = second\naws_access_key_id = AKIAD\n",
    "# role_arn = arn:aws:iam::1:role/commented\n; another\n\n\
     [default]\nRegion = eu-west-1\nRole_Session_Name = me\n\
     [profile a] ; comment\nrole_arn=arn:aws:iam::1:role/a\nsource_profile = default\n\
     [profile b]#c\nexternal_id = x\nregion = us-east-1 ; inline\n\
     credential_process = /bin/sh -c 'echo x'\n  continued = yes\n\
     [profile bad name]\nregion = dropped\n\
     [Profile c]\nregion = other-section\n\
     [a]\naws_access_key_id = AKIAA\naws_secret_access_key = sa\n\
     [profile a]\nregion = later\n",
    "[a]\r\naws_access_key_id = AKIACRLF\r\naws_secret_access_key = s\r\n[b]\r\nregion = r\r\n",
    "[a]\naws_access_key_id = AKIAA\n[b]\naws_secret_access_key = no-last-newline",
    "[same]\nregion = r\n[same]\nregion = r\n[other]\nregion = o\n",
];

async fn same_as_whole(text: &str, kind: EnvConfigFileKind, last: Option<&Sections>) -> Sections {
    let whole = parse_one(text, kind).await.unwrap();
    let (ours, sections) = parse(text, kind, last).await.unwrap();
    assert_eq!(*ours.profiles, *whole.profiles, "{kind:?}: {text:?}");
    assert_eq!(ours.sso_sessions, whole.sso_sessions, "{kind:?}: {text:?}");
    sections
}

#[tokio::test]
async fn the_parse_by_sections_is_the_sdks_parse_of_the_whole_text() {
    for kind in [EnvConfigFileKind::Config, EnvConfigFileKind::Credentials] {
        for text in TEXTS {
            same_as_whole(text, kind, None).await;
        }
    }
    // The cases are there to compare.
    let whole = parse_one(TEXTS[2], EnvConfigFileKind::Config)
        .await
        .unwrap();
    assert_eq!(whole.profiles["default"]["region"], "from-profile-default");
    assert_eq!(whole.profiles["both"]["region"], "again");
    assert!(whole.profiles["both"].contains_key("role_arn"));
    assert_eq!(whole.sso_sessions["corp"]["sso_region"], "us-east-2");
    assert!(!whole.profiles.contains_key("not-prefixed"));
}

/// Every text read after every other (its sections' results kept from the
/// one before) parses as the whole text does.
#[tokio::test]
async fn after_any_change_the_parse_is_still_the_whole_texts() {
    for kind in [EnvConfigFileKind::Config, EnvConfigFileKind::Credentials] {
        for before in TEXTS {
            let kept = parse(before, kind, None).await.unwrap().1;
            for after in TEXTS {
                same_as_whole(after, kind, Some(&kept)).await;
            }
        }
    }
}

fn many(n: usize) -> String {
    let mut text = String::from("# generated\n");
    for i in 0..n {
        text.push_str(&format!(
            "[profile p{i}]\nrole_arn = arn:aws:iam::1:role/r{i}\nsource_profile = base\n\n"
        ));
    }
    text.push_str("[profile base]\ncredential_process = /bin/true\n");
    text
}

#[tokio::test]
async fn a_first_read_is_one_sdk_parse_and_a_change_parses_only_what_changed() {
    let kind = EnvConfigFileKind::Config;
    let text = many(200);
    let before = parses();
    let first = same_as_whole(&text, kind, None).await;
    let whole = parses() - before - 1; // same_as_whole's own whole parse
    assert_eq!(whole, 1, "the 201 sections in one parse");

    // The same text again: nothing for the SDK.
    let before = parses();
    let (again, kept) = parse(&text, kind, Some(&first)).await.unwrap();
    assert_eq!(parses() - before, 0);
    assert_eq!(again.profiles.len(), 201);

    // One section edited, one added: those two are parsed (together, in
    // one SDK parse), every other section's result is the one kept.
    let edited =
        text.replace("role/r7\n", "role/seven\n") + "[profile added]\nregion = eu-west-1\n";
    let before = parses();
    let (changed, now) = parse(&edited, kind, Some(&kept)).await.unwrap();
    assert_eq!(parses() - before, 1);
    let made_now = now
        .sorted
        .iter()
        .filter(|(d, g)| !kept.get(*d).is_some_and(|k| Arc::ptr_eq(k, g)))
        .count();
    assert_eq!(made_now, 2, "only the edited and the added section are new");
    assert_eq!(now.sorted.len(), kept.sorted.len() + 1);
    assert_eq!(
        changed.profiles["p7"]["role_arn"],
        "arn:aws:iam::1:role/seven"
    );
    assert_eq!(changed.profiles["added"]["region"], "eu-west-1");
    assert_eq!(changed.profiles.len(), 202);
    same_as_whole(&edited, kind, Some(&kept)).await;
}

/// A section the SDK refuses fails the parse with the whole file's error:
/// the line in the file, not in the section.
#[tokio::test]
async fn a_broken_section_is_reported_at_its_line_in_the_file() {
    let kind = EnvConfigFileKind::Config;
    let good = many(20);
    let kept = parse(&good, kind, None).await.unwrap().1;
    let broken = good.replace("[profile p15]\n", "[profile p15\n");
    let line = broken.lines().position(|l| l == "[profile p15").unwrap() + 1;
    for last in [None, Some(&kept)] {
        let err = match parse(&broken, kind, last).await {
            Err(e) => e,
            Ok(_) => panic!("a header without ']' parsed"),
        };
        let shown = format!("{}", std::error::Error::source(&err).unwrap());
        assert!(shown.contains(&format!("on line {line}")), "{shown}");
    }
}

#[test]
fn a_value_is_kept_as_a_span_of_its_section_unless_the_sdk_made_it() {
    let piece = "[profile a]\nregion = eu-west-1\ns3 =\n  x = 1\n";
    let at = Text::of(piece, "eu-west-1");
    assert!(matches!(at, Text::At(_, 9)));
    assert_eq!(at.get(piece), "eu-west-1");
    let made = Text::of(piece, "\nx = 1");
    assert_eq!(std::mem::size_of::<Text>(), 16);
    assert!(matches!(made, Text::Owned(_)));
    assert_eq!(made.get(piece), "\nx = 1");
}

#[test]
fn the_text_is_cut_before_each_header() {
    assert_eq!(cut(""), vec![""]);
    assert_eq!(cut("[a]\nk=v\n"), vec!["", "[a]\nk=v\n"]);
    assert_eq!(
        cut("#c\n[a]\n k\n[b]\r\nx"),
        vec!["#c\n", "[a]\n k\n", "[b]\r\nx"]
    );
    assert_eq!(cut(" [not]\n"), vec![" [not]\n"]);
    assert_eq!(cut("x[a]\n[b]"), vec!["x[a]\n", "[b]"]);
}

/// Files made of random lines (headers each spelt one way per name, keys
/// known and not, sub-properties, continuations, comments, blank lines,
/// lines the parser refuses), each read fresh and after the one before:
/// the same profiles as the whole text's parse, or an error when it fails.
#[tokio::test]
async fn random_files_parse_by_sections_as_whole() {
    use rand::{Rng, SeedableRng};
    const HEADERS: &[&str] = &[
        "[default]",
        "[profile default]",
        "[profile a]",
        "[profile b]#c",
        "[a]",
        "[b] ; c",
        "[sso-session s]",
        "[services x]",
        "[profile bad name]",
    ];
    const LINES: &[&str] = &[
        "region = r1",
        "Region = r2",
        "role_arn = arn:aws:iam::1:role/x",
        "aws_access_key_id = AKIAX",
        "aws_secret_access_key = s ; not a comment",
        "sso_region = eu-west-1",
        "s3 =",
        "  addressing_style = path",
        "# comment",
        "; comment",
        "",
        "credential_process = /bin/true",
        "unknown_key = y",
    ];
    // Refused by the parser: before any header, or a continuation after one.
    const BAD: &[&str] = &["not a property", "  continued"];
    let mut rng = rand::rngs::StdRng::seed_from_u64(16);
    let (mut compared, mut refused) = (0, 0);
    for kind in [EnvConfigFileKind::Config, EnvConfigFileKind::Credentials] {
        let mut kept: Option<Sections> = None;
        for _ in 0..400 {
            let mut text = String::new();
            for i in 0..rng.gen_range(0..14) {
                // Settings before any header are refused: start with one mostly.
                let line = if (i == 0 && rng.gen_bool(0.9)) || rng.gen_bool(0.3) {
                    HEADERS[rng.gen_range(0..HEADERS.len())]
                } else if rng.gen_bool(0.02) {
                    BAD[rng.gen_range(0..BAD.len())]
                } else {
                    LINES[rng.gen_range(0..LINES.len())]
                };
                text.push_str(line);
                text.push_str(if rng.gen_bool(0.1) { "\r\n" } else { "\n" });
            }
            if rng.gen_bool(0.2) {
                text.pop();
            }
            match parse_one(&text, kind).await {
                Ok(whole) => {
                    let (ours, sections) = parse(&text, kind, kept.as_ref()).await.unwrap();
                    assert_eq!(*ours.profiles, *whole.profiles, "{kind:?}: {text:?}");
                    assert_eq!(ours.sso_sessions, whole.sso_sessions, "{kind:?}: {text:?}");
                    compared += 1;
                    kept = Some(sections);
                }
                Err(_) => {
                    assert!(parse(&text, kind, kept.as_ref()).await.is_err(), "{text:?}");
                    refused += 1;
                }
            }
        }
    }
    assert!(
        compared > 400 && refused > 20,
        "{compared} compared, {refused} refused"
    );
}
