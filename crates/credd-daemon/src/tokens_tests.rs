//! Unit tests of [`super`] (tokens.rs), in their own file to keep that one
//! about the code.

use super::*;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-23 09:00 UTC);

#[test]
fn scoped_expiring_revocable_and_persisted_as_digests() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let store = TokenStore::open(path.clone(), NOW);
    let (tok, rec) = store
        .issue(
            vec!["a".into()],
            NOW,
            Some(time::Duration::hours(1)),
            "t".into(),
        )
        .unwrap();
    let t = tok.expose().as_bytes();
    assert!(store.authorize(Some(t), Some("a"), NOW).is_ok());
    assert_eq!(
        store.authorize(Some(t), Some("b"), NOW),
        Err(AuthError::Forbidden)
    );
    assert_eq!(
        store.authorize(None, Some("a"), NOW),
        Err(AuthError::Missing)
    );
    assert_eq!(
        store.authorize(Some(b""), Some("a"), NOW),
        Err(AuthError::Invalid)
    );
    assert_eq!(
        store.authorize(Some(&t[..t.len() - 1]), Some("a"), NOW),
        Err(AuthError::Invalid)
    );
    let later = NOW + time::Duration::hours(2);
    assert_eq!(
        store.authorize(Some(t), Some("a"), later),
        Err(AuthError::Expired)
    );
    assert_eq!(store.failures(), 5);

    let on_disk = std::fs::read_to_string(&path).unwrap();
    assert!(
        !on_disk.contains(&tok.expose()[23..]),
        "secret never stored"
    );
    let reopened = TokenStore::open(path.clone(), NOW);
    assert!(reopened.authorize(Some(t), Some("a"), NOW).is_ok());
    assert!(reopened.revoke(&rec.id, NOW).unwrap());
    assert_eq!(
        reopened.authorize(Some(t), Some("a"), NOW),
        Err(AuthError::Invalid)
    );
    assert!(TokenStore::open(path, NOW).list(NOW).is_empty());
}

#[test]
fn revoke_by_value_checks_the_secret_and_by_label_or_all() {
    let store = TokenStore::in_memory();
    let issue = |label: &str| {
        store
            .issue(vec!["a".into()], NOW, None, label.into())
            .unwrap()
    };
    let (t1, r1) = issue("x");
    let forged = format!("credd_{}_{}", r1.id, "0".repeat(64));
    assert_eq!(store.revoke_value(&forged, NOW).unwrap(), None);
    assert_eq!(store.revoke_value("junk", NOW).unwrap(), None);
    assert!(store
        .authorize(Some(t1.expose().as_bytes()), None, NOW)
        .is_ok());
    assert_eq!(
        store.revoke_value(t1.expose(), NOW).unwrap(),
        Some(r1.id.clone())
    );
    assert!(store
        .authorize(Some(t1.expose().as_bytes()), None, NOW)
        .is_err());
    let (_, a) = issue("ci");
    let (_, b) = issue("ci");
    let (_, keep) = issue("other");
    let mut by_label = store.revoke_matching(|r| r.label == "ci", NOW).unwrap();
    by_label.sort();
    let mut want = vec![a.id, b.id];
    want.sort();
    assert_eq!(by_label, want);
    assert_eq!(store.revoke_matching(|_| true, NOW).unwrap(), [keep.id]);
    assert!(store.list(NOW).is_empty());
}

#[test]
fn files_of_dead_tokens_are_swept_and_nothing_else() {
    let store = TokenStore::in_memory();
    let issue = |ttl: i64| {
        store
            .issue(
                vec!["a".into()],
                NOW,
                Some(time::Duration::hours(ttl)),
                "t".into(),
            )
            .unwrap()
            .1
            .id
    };
    let (live, expiring, revoked) = (issue(24), issue(1), issue(24));
    store.revoke(&revoked, NOW).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str| dir.path().join(name);
    for id in [&live, &expiring, &revoked] {
        std::fs::write(file(id), "credd_secret").unwrap();
    }
    // Never issued by this daemon: also dead.
    std::fs::write(file("00112233aabbccdd"), "x").unwrap();
    // Not named like a token, a directory, a symlink: left alone.
    std::fs::write(file("notes.txt"), "keep").unwrap();
    std::fs::create_dir(file("0123456789abcdef")).unwrap();
    std::os::unix::fs::symlink(file("notes.txt"), file("fedcba9876543210")).unwrap();

    assert_eq!(store.sweep_files(dir.path(), NOW), 2, "revoked and unknown");
    assert!(file(&live).exists() && file(&expiring).exists());
    assert!(!file(&revoked).exists() && !file("00112233aabbccdd").exists());
    let later = NOW + time::Duration::hours(2);
    assert_eq!(store.sweep_files(dir.path(), later), 1, "expired");
    assert!(file(&live).exists() && !file(&expiring).exists());
    assert!(file("notes.txt").exists() && file("0123456789abcdef").is_dir());
    assert!(std::fs::symlink_metadata(file("fedcba9876543210")).is_ok());
    assert_eq!(store.sweep_files(&file("missing"), NOW), 0);
}

#[test]
fn a_docker_binding_is_stored_and_claimed_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let store = TokenStore::open(path.clone(), NOW);
    let binding = token::DockerBinding {
        engine: "unix:///run/docker.sock".into(),
        container: None,
    };
    let (_, rec) = store
        .issue_bound(vec!["a".into()], NOW, None, "d".into(), Some(binding))
        .unwrap();
    let (_, plain) = store
        .issue(vec!["a".into()], NOW, None, "p".into())
        .unwrap();
    assert!(store.bind_container(&rec.id, "c1", NOW).unwrap());
    assert!(
        !store.bind_container(&rec.id, "c2", NOW).unwrap(),
        "first one wins"
    );
    assert!(
        !store.bind_container(&plain.id, "c3", NOW).unwrap(),
        "not bound"
    );
    let again = TokenStore::open(path, NOW);
    let got = again.list(NOW);
    let b = got.iter().find(|r| r.id == rec.id).unwrap();
    assert_eq!(b.docker.as_ref().unwrap().container.as_deref(), Some("c1"));
    assert!(got
        .iter()
        .find(|r| r.id == plain.id)
        .unwrap()
        .docker
        .is_none());
}

#[test]
fn corrupt_store_is_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    fsutil::write_private(&path, b"{not json").unwrap();
    let store = TokenStore::open(path.clone(), NOW);
    assert!(store.list(NOW).is_empty());
    assert!(!path.exists());
    let kept: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(kept.len(), 1, "the bad file is kept aside");
}

#[test]
fn a_refused_file_is_left_alone_and_merged_once_fixed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let hour = Some(time::Duration::hours(1));
    let first = TokenStore::open(path.clone(), NOW);
    let (kept, kept_rec) = first
        .issue(vec!["a".into()], NOW, hour, "k".into())
        .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let before = std::fs::read(&path).unwrap();

    // Refused while running: nothing written, earlier tokens still work.
    let e = first
        .issue(vec!["a".into()], NOW, hour, "x".into())
        .unwrap_err();
    assert!(e.to_string().contains("chmod 600"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert!(first
        .authorize(Some(kept.expose().as_bytes()), Some("a"), NOW)
        .is_ok());

    // Refused at start: not read, not replaced; revoking works in memory
    // and is kept out when the file comes back.
    let second = TokenStore::open(path.clone(), NOW);
    assert!(second.list(NOW).is_empty());
    assert!(second.revoke(&kept_rec.id, NOW).is_err());
    assert_eq!(std::fs::read(&path).unwrap(), before);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (_, new_rec) = second
        .issue(vec!["a".into()], NOW, hour, "n".into())
        .unwrap();
    let ids: Vec<String> = TokenStore::open(path, NOW)
        .list(NOW)
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, [new_rec.id], "the revoked one stays out");
}

#[test]
fn a_fifo_in_place_of_the_file_does_not_block_and_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &path,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    let store = TokenStore::open(path.clone(), NOW);
    let e = store
        .issue(vec!["a".into()], NOW, None, "x".into())
        .unwrap_err();
    assert!(e.to_string().contains("FIFO"), "{e}");
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(
        &std::fs::symlink_metadata(&path).unwrap().file_type()
    ));
}

fn ids(store: &TokenStore) -> Vec<String> {
    let mut v: Vec<String> = store.list(NOW).into_iter().map(|r| r.id).collect();
    v.sort();
    v
}

fn issue_one(store: &TokenStore) -> String {
    store
        .issue(vec!["a".into()], NOW, None, "j".into())
        .unwrap()
        .1
        .id
}

#[test]
fn a_change_appends_one_line_and_the_journal_is_folded_after_as_many() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let journal = dir.path().join("tokens.journal");
    let store = TokenStore::open(path.clone(), NOW);
    let first = issue_one(&store);
    assert!(
        path.exists() && !journal.exists(),
        "the first is written whole"
    );
    let snapshot = std::fs::read(&path).unwrap();
    let mut issued = vec![first];
    for n in 1..=10 {
        issued.push(issue_one(&store));
        let lines = std::fs::read_to_string(&journal).unwrap().lines().count();
        assert_eq!(lines, n, "one line per token");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            snapshot,
            "tokens.json untouched"
        );
    }
    assert!(store.revoke(&issued[0], NOW).unwrap());
    assert_eq!(
        std::fs::read_to_string(&journal).unwrap().lines().count(),
        11
    );
    let mode = std::os::unix::fs::MetadataExt::mode(&std::fs::metadata(&journal).unwrap());
    assert_eq!(mode & 0o777, 0o600);
    // Issue until the journal is due: it is folded, and nothing is lost.
    while journal.exists() {
        issued.push(issue_one(&store));
        assert!(issued.len() < 1000, "never folded");
    }
    issued.remove(0);
    issued.sort();
    assert_eq!(ids(&store), issued);
    let on_disk: Vec<TokenRecord> = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(on_disk.len(), issued.len(), "folded into tokens.json");
    assert_eq!(ids(&TokenStore::open(path, NOW)), issued);
}

#[test]
fn a_torn_journal_line_is_dropped_and_every_acknowledged_change_survives() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let journal = dir.path().join("tokens.journal");
    let store = TokenStore::open(path.clone(), NOW);
    let mut live: Vec<String> = (0..4).map(|_| issue_one(&store)).collect();
    let revoked = live.remove(0);
    assert!(store.revoke(&revoked, NOW).unwrap());
    assert!(journal.exists(), "the later changes are journal lines");
    drop(store);
    // A crash in the middle of the next append: half a line, unacknowledged.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&journal)
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"op\":\"issue\",\"record\":{\"id\":\"00").unwrap();
    drop(f);
    let again = TokenStore::open(path.clone(), NOW);
    live.sort();
    assert_eq!(
        ids(&again),
        live,
        "the revocation holds, the issues survive"
    );
    assert!(!journal.exists(), "folded into tokens.json at start");
    // Appends start on a clean line again.
    let newer = issue_one(&again);
    live.push(newer);
    live.sort();
    assert_eq!(ids(&TokenStore::open(path, NOW)), live);
}

#[test]
fn a_corrupt_journal_is_set_aside_keeping_the_lines_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let journal = dir.path().join("tokens.journal");
    let store = TokenStore::open(path.clone(), NOW);
    let kept: Vec<String> = (0..3).map(|_| issue_one(&store)).collect();
    drop(store);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&journal)
        .unwrap();
    std::io::Write::write_all(&mut f, b"{garbage}\n").unwrap();
    drop(f);
    let again = TokenStore::open(path, NOW);
    let mut want = kept;
    want.sort();
    assert_eq!(ids(&again), want);
    assert!(!journal.exists());
    let aside = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy()
                .starts_with("tokens.journal.corrupt-")
        })
        .count();
    assert_eq!(aside, 1, "kept for the user to look at");
}

#[test]
fn replaying_a_journal_already_folded_changes_nothing() {
    // A crash between writing tokens.json whole and removing the journal.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let journal = dir.path().join("tokens.journal");
    let store = TokenStore::open(path.clone(), NOW);
    let binding = token::DockerBinding {
        engine: "unix:///run/docker.sock".into(),
        container: None,
    };
    issue_one(&store);
    let (_, bound) = store
        .issue_bound(vec!["a".into()], NOW, None, "d".into(), Some(binding))
        .unwrap();
    assert!(store.bind_container(&bound.id, "c1", NOW).unwrap());
    let gone = issue_one(&store);
    assert!(store.revoke(&gone, NOW).unwrap());
    let lines = std::fs::read(&journal).unwrap();
    drop(store);
    let folded = TokenStore::open(path.clone(), NOW);
    let mut want = folded.list(NOW);
    want.sort_by(|a, b| a.id.cmp(&b.id));
    assert!(!journal.exists());
    fsutil::write_private(&journal, &lines).unwrap();
    let mut replayed = TokenStore::open(path, NOW).list(NOW);
    replayed.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(replayed, want);
    let b = replayed.iter().find(|r| r.id == bound.id).unwrap();
    assert_eq!(b.docker.as_ref().unwrap().container.as_deref(), Some("c1"));
    assert!(replayed.iter().all(|r| r.id != gone));
}
