//! Unit tests of [`super`] (userfile.rs), in their own file to keep that one
//! about the code; they see its private items as an inline module would.

use super::*;

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().mode() & 0o7777
}

#[test]
fn writes_through_a_symlink_and_keeps_the_link() {
    let d = tempfile::tempdir().unwrap();
    fs::create_dir(d.path().join("dots")).unwrap();
    fs::write(d.path().join("dots/credentials"), "[a]\n").unwrap();
    fs::set_permissions(
        d.path().join("dots/credentials"),
        fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    let link = d.path().join("credentials");
    std::os::unix::fs::symlink("dots/credentials", &link).unwrap();
    let r = edit::<UserFileError>(&link, &Options::aws_file(), |old| {
        let mut v = old.unwrap().to_vec();
        v.extend_from_slice(b"[b]\n");
        Ok(Some(v))
    })
    .unwrap();
    assert_eq!(r.target, d.path().join("dots/credentials"));
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read_to_string(&link).unwrap(), "[a]\n[b]\n");
    // Group bits dropped, owner bits kept.
    assert_eq!(mode(&d.path().join("dots/credentials")), 0o600);
    // A private file replaces a symlink instead.
    replace(&link, &Options::private_file(), b"x").unwrap();
    assert!(fs::symlink_metadata(&link).unwrap().is_file());
    assert_eq!(
        fs::read_to_string(d.path().join("dots/credentials")).unwrap(),
        "[a]\n[b]\n"
    );
}

#[test]
fn sweeps_only_its_own_temporaries() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n);
    for n in [
        ".credentials.credd-tmp-AbC123",
        ".config.credd-tmp-AbC123",
        ".credentials.credd-tmp-toolong1",
        "credentials.credd-tmp-AbC123",
        ".credentials-credd-XyZ789",
        ".credd-tmp-XyZ789",
        "notes.txt",
    ] {
        fs::write(p(n), "k").unwrap();
    }
    std::os::unix::fs::symlink(p("notes.txt"), p(".credentials.credd-tmp-Lnk000")).unwrap();
    // Unlocked, young copies may be live: kept.
    assert_eq!(sweep_temporaries(d.path(), false), 0);
    // Locked, ours go; the legacy names are young: kept (a writer of an
    // earlier version, which took no lock, may still be at it).
    assert_eq!(sweep_temporaries(d.path(), true), 2);
    assert!(!p(".credentials.credd-tmp-AbC123").exists());
    assert!(!p(".config.credd-tmp-AbC123").exists());
    for kept in [
        ".credentials.credd-tmp-toolong1",
        "credentials.credd-tmp-AbC123",
        ".credentials-credd-XyZ789",
        ".credd-tmp-XyZ789",
        "notes.txt",
    ] {
        assert!(p(kept).exists(), "{kept}");
    }
    assert!(fs::symlink_metadata(p(".credentials.credd-tmp-Lnk000")).is_ok());
}

#[test]
fn a_change_by_another_program_is_merged_or_refused() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("config");
    fs::write(&path, "[a]\n").unwrap();
    let mut calls = 0;
    let r = edit::<UserFileError>(&path, &Options::aws_file(), |old| {
        calls += 1;
        if calls == 1 {
            // Another tool rewrites the file in place meanwhile.
            fs::write(&path, "[a]\n[other]\n").unwrap();
        }
        let mut v = old.unwrap().to_vec();
        v.extend_from_slice(b"[ours]\n");
        Ok(Some(v))
    })
    .unwrap();
    assert_eq!(r.merges, 1);
    assert_eq!(fs::read_to_string(&path).unwrap(), "[a]\n[other]\n[ours]\n");

    let e = edit::<UserFileError>(&path, &Options::private_file(), |_| {
        fs::write(&path, "theirs").unwrap();
        Ok(Some(b"ours".to_vec()))
    })
    .unwrap_err();
    assert!(matches!(e, UserFileError::Changed { .. }), "{e}");
    assert_eq!(fs::read_to_string(&path).unwrap(), "theirs");
    let left: Vec<_> = fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(left, ["config"], "no lock file, no temporary copy");
}

#[test]
fn a_fifo_is_refused_without_blocking() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("credentials");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let e = replace(&path, &Options::aws_file(), b"x").unwrap_err();
    assert!(matches!(e, UserFileError::NotRegular { .. }), "{e}");
}

#[test]
fn the_lock_is_exclusive_and_times_out_with_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("credentials");
    let held = lock(d.path(), &path, Duration::ZERO).unwrap().unwrap();
    let opts = Options {
        lock_timeout: Duration::from_millis(50),
        ..Options::aws_file()
    };
    let e = replace(&path, &opts, b"x").unwrap_err();
    assert!(e.to_string().contains("another credd command"), "{e}");
    drop(held);
    replace(&path, &opts, b"x").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"x");
}

#[test]
fn directories_are_created_private_and_existing_ones_left_alone() {
    let d = tempfile::tempdir().unwrap();
    let opts = Options {
        check_dir: true,
        lock: false,
        ..Options::private_file()
    };
    let new = d.path().join("a/b/t");
    replace(&new, &opts, b"x").unwrap();
    assert_eq!(mode(&d.path().join("a/b")), 0o700);
    for (m, ok) in [
        (0o1777, true),
        (0o755, true),
        (0o777, false),
        (0o775, false),
    ] {
        let dir = d.path().join(format!("d{m:o}"));
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(m)).unwrap();
        let r = replace(&dir.join("t"), &opts, b"x");
        assert_eq!(r.is_ok(), ok, "{m:o}: {r:?}");
        assert_eq!(mode(&dir), m);
        if ok {
            assert_eq!(mode(&dir.join("t")), 0o600);
        }
    }
}
