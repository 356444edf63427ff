//! A real Docker engine for the tests: Debian's `dockerd` (package
//! `docker.io`), started as root with its own `--data-root`, `--exec-root`,
//! `--pidfile` and socket, and the default bridge.
//!
//! It runs in a network namespace of its own (`nsenter --net`, not `ip
//! netns exec`, which remounts /sys and hides the cgroup mounts dockerd
//! needs) and a private mount namespace (`unshare -m`). So `docker0`,
//! docker's iptables chains and MASQUERADE rule, the FORWARD policy and
//! `net.ipv4.ip_forward` it changes are the namespace's, never the host's
//! (other engineers' tests run on the same kernel), and its overlay mounts
//! vanish with it. To the engine and to credd that namespace *is* the host:
//! `credd serve`, `credd docker setup`, host-side clients and
//! `--network host` containers all run in it ([`Dockerd::host_cmd`]).
//! On drop every process in the namespace is killed by PID, what dockerd
//! leaves behind is removed, the namespace deleted, and the host's
//! `ip_forward` checked unchanged.
//!
//! Engines are serialized with a file lock: one at a time keeps the 2-core
//! machine usable and the logs readable.
//!
//! Images are built locally (no registry is reachable): `docker import` of
//! a root file system holding Debian's statically linked busybox
//! (`busybox-static`), whose tarball is cached under `target/`.
//!
//! No root, no `dockerd` or no busybox: the test panics saying why and what
//! to install (never a silent pass).

use super::{credd_bin, repo, Daemon, Env, Moto};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The image every test container runs: busybox (sh, httpd, nc, wget).
pub const IMAGE: &str = "credd-test-busybox:1";
/// The busybox applets the image links. (Debian 1.35's `wget -T` crashes:
/// bound a wait with the `timeout` applet instead.)
const APPLETS: [&str; 10] = [
    "sh", "httpd", "nc", "wget", "cat", "echo", "sleep", "ls", "id", "timeout",
];

pub struct Dockerd {
    pub ns: String,
    pub dir: tempfile::TempDir,
    extra: Vec<String>,
    pid: Option<u32>,
    host_ip_forward: String,
    ns_ip_forward: String,
    _lock: std::fs::File,
}

fn need(program: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "the real-engine tests need `{program}`: install Debian's {package} as root \
         (`apt-get install {package}`; .ci/run does). Not skipped: they prove credd's tokens never reach another container"
    );
}

fn sh(cmd: &mut Command) -> Output {
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

impl Dockerd {
    /// Starts an engine; `extra` are more `dockerd` flags (e.g.
    /// `--userland-proxy=false`), kept across [`Dockerd::restart`].
    pub fn start(extra: &[&str]) -> Dockerd {
        assert!(
            rustix::process::geteuid().is_root(),
            "the real-engine tests start dockerd and change iptables: run them as root (CI does). Not skipped"
        );
        need("dockerd", "docker.io");
        need("docker", "docker.io");
        need("busybox", "busybox-static");
        need("nsenter", "util-linux");
        need("unshare", "util-linux");
        need("setpriv", "util-linux");
        need("iptables", "iptables");
        // One engine at a time (see the module docs).
        // Machine-wide (every worktree's tests), hence in /tmp: never
        // through a symlink another user could have planted there.
        let lock_path = std::env::temp_dir().join("credd-test-dockerd.lock");
        let lock = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                .open(&lock_path)
                .unwrap_or_else(|e| panic!("{}: {e}", lock_path.display()))
        };
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
        let host_ip_forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
        reap_stale_engines();
        let ns = format!("credd-dk{}", std::process::id());
        sh(Command::new("ip").args(["netns", "add", &ns]));
        // A fresh namespace's lo is down: credd's address goes there.
        sh(Command::new("ip").args(["-n", &ns, "link", "set", "lo", "up"]));
        // dockerd turns forwarding on; put back what the namespace had.
        let ns_ip_forward = String::from_utf8_lossy(
            &sh(Command::new("nsenter")
                .arg(format!("--net=/run/netns/{ns}"))
                .args(["--", "sysctl", "-n", "net.ipv4.ip_forward"]))
            .stdout,
        )
        .trim()
        .to_string();
        let dir = tempfile::Builder::new()
            .prefix("credd-dockerd-")
            .tempdir()
            .unwrap();
        let mut d = Dockerd {
            ns,
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            pid: None,
            host_ip_forward,
            ns_ip_forward,
            _lock: lock,
        };
        d.launch();
        d.import_image();
        d
    }

    fn launch(&mut self) {
        let p = |s: &str| self.dir.path().join(s);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p("dockerd.log"))
            .unwrap();
        let _ = std::fs::remove_file(p("docker.sock"));
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.ns))
            .args(["--", "unshare", "--mount", "--propagation", "private", "--"])
            .arg("dockerd")
            .arg("--data-root")
            .arg(p("data"))
            .arg("--exec-root")
            .arg(p("exec"))
            .arg("--pidfile")
            .arg(p("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", p("docker.sock").display()))
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = c.spawn().expect("start dockerd");
        self.pid = Some(child.id());
        // Reaped in stop(): dropping a Child neither kills nor waits.
        std::mem::forget(child);
        let start = Instant::now();
        loop {
            let o = self.docker(&["version", "--format", "{{.Server.Version}}"]);
            if o.status.success() {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "dockerd did not become ready in 30 s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    /// `docker ARGS` against this engine.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .env("DOCKER_HOST", format!("unix://{}", self.socket().display()))
            .args(args)
            .output()
            .expect("run docker")
    }

    pub fn docker_ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(
            o.status.success(),
            "docker {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// A command run on the engine's "host" (its network namespace).
    pub fn host_cmd(&self, env: &Env, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = env.cmd("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.ns))
            .arg("--")
            .arg(program);
        c
    }

    /// moto on the engine's host loopback, where `credd serve` (also
    /// there) reaches it.
    pub fn moto(&self) -> Moto {
        let mut python = Command::new("nsenter");
        python
            .arg(format!("--net=/run/netns/{}", self.ns))
            .arg("--")
            .arg(super::python());
        Moto::spawn(python, "127.0.0.1")
    }

    /// `credd serve` on the engine's host, also listening where `credd
    /// docker setup`'s DNAT sends containers.
    pub fn serve(&self, env: &Env) -> Daemon {
        let log = env.path("serve-dockerd.log");
        let logf = std::fs::File::create(&log).unwrap();
        let child = self
            .host_cmd(env, credd_bin())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--also-listen",
                "169.254.170.2:9913",
            ])
            .env("CREDD_LOG", "info,credd_daemon=debug")
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .spawn()
            .unwrap();
        Daemon::when_ready(child, log, Duration::from_secs(30), || {
            Some(env.credd(&["status", "--json"]))
        })
    }

    /// `iptables -t nat -S` on the engine's host.
    pub fn nat(&self) -> String {
        let o = sh(Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.ns))
            .args(["--", "iptables", "-t", "nat", "-S"]));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// The busybox root file system as a tarball, built once and cached
    /// under target/ (keyed by busybox's size and mtime), then imported.
    fn import_image(&self) {
        let busybox = Path::new("/bin/busybox");
        let meta = std::fs::metadata(busybox)
            .unwrap_or_else(|e| panic!("/bin/busybox: {e}: install Debian's busybox-static"));
        let key = format!(
            "{}-{}",
            meta.len(),
            meta.modified()
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
        );
        let cache = repo().join("target/credd-test-images");
        std::fs::create_dir_all(&cache).unwrap();
        // The applet list is part of the key: change it and the cache is rebuilt.
        let tar = cache.join(format!("busybox-{key}-{}.tar", APPLETS.len()));
        if !tar.exists() {
            let root = tempfile::tempdir().unwrap();
            for d in ["bin", "tmp", "log", "etc", "run/secrets"] {
                std::fs::create_dir_all(root.path().join(d)).unwrap();
            }
            std::fs::copy(busybox, root.path().join("bin/busybox")).unwrap();
            for applet in APPLETS {
                std::os::unix::fs::symlink("busybox", root.path().join("bin").join(applet))
                    .unwrap();
            }
            let part = tar.with_extension("part");
            sh(Command::new("tar")
                .arg("-C")
                .arg(root.path())
                .arg("-cf")
                .arg(&part)
                .arg("."));
            std::fs::rename(&part, &tar).unwrap();
        }
        self.docker_ok(&["import", tar.to_str().unwrap(), IMAGE]);
    }

    /// Stops dockerd (SIGTERM, as `systemctl stop docker` does: it stops
    /// its containers and its containerd) and waits until every process of
    /// the engine (those in dockerd's private mount namespace) is gone,
    /// killing by PID what outlives 10 s.
    pub fn stop(&mut self) {
        let Some(pid) = self.pid.take() else { return };
        let mnt = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
        let raw = rustix::process::Pid::from_raw(pid as i32).unwrap();
        let _ = rustix::process::kill_process(raw, rustix::process::Signal::TERM);
        let _ = rustix::process::waitpid(Some(raw), rustix::process::WaitOptions::empty());
        let Some(mnt) = mnt else { return };
        let start = Instant::now();
        loop {
            let left: Vec<i32> = std::fs::read_dir("/proc")
                .unwrap()
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .filter(|p: &i32| {
                    std::fs::read_link(format!("/proc/{p}/ns/mnt"))
                        .ok()
                        .as_ref()
                        == Some(&mnt)
                })
                .collect();
            if left.is_empty() {
                return;
            }
            if start.elapsed() > Duration::from_secs(10) {
                for p in left {
                    if let Some(p) = rustix::process::Pid::from_raw(p) {
                        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills, by PID, what still runs in the engine's namespace
    /// (containerd shims, containers): all of it was started here.
    fn kill_leftovers(&self) {
        for round in 0..50 {
            let o = Command::new("ip")
                .args(["netns", "pids", &self.ns])
                .output()
                .unwrap();
            let pids: Vec<i32> = String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect();
            if pids.is_empty() {
                return;
            }
            let sig = if round < 20 {
                rustix::process::Signal::TERM
            } else {
                rustix::process::Signal::KILL
            };
            for p in pids {
                if let Some(p) = rustix::process::Pid::from_raw(p) {
                    let _ = rustix::process::kill_process(p, sig);
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `dockerd` stopped and started again on the same state, as `systemctl
    /// restart docker` does.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

/// An engine whose test process died without its drop (killed, aborted)
/// leaves its namespace and processes: those of a `credd-dkPID` namespace
/// whose PID is gone are killed by PID and the namespace deleted. (Run
/// under the lock, so no live engine is starting or stopping.)
fn reap_stale_engines() {
    let o = Command::new("ip").args(["netns", "list"]).output().unwrap();
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(pid) = name.strip_prefix("credd-dk") else {
            continue;
        };
        if pid.is_empty() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let o = Command::new("ip")
            .args(["netns", "pids", name])
            .output()
            .unwrap();
        let mut dirs = vec![];
        for p in String::from_utf8_lossy(&o.stdout).split_whitespace() {
            // dockerd's --data-root DIR/data names the directory to remove.
            let argv = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let argv: Vec<&[u8]> = argv.split(|b| *b == 0).collect();
            if let Some(w) = argv.windows(2).find(|w| w[0] == b"--data-root") {
                let data = PathBuf::from(String::from_utf8_lossy(w[1]).into_owned());
                if let Some(dir) = data.parent() {
                    if dir.starts_with(std::env::temp_dir()) {
                        dirs.push(dir.to_path_buf());
                    }
                }
            }
            if let Some(p) = p.parse().ok().and_then(rustix::process::Pid::from_raw) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            }
        }
        std::thread::sleep(Duration::from_millis(500));
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        for d in dirs {
            let _ = std::fs::remove_dir_all(d);
        }
        eprintln!("removed the namespace {name} of a test process that died");
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // Containers first, so dockerd removes their rules and mounts.
        let o = self.docker(&["ps", "-aq"]);
        let ids: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids.iter().map(String::as_str));
            let _ = self.docker(&args);
        }
        self.stop();
        self.kill_leftovers();
        // What dockerd leaves behind in its namespace: gone with it, but
        // removed explicitly first so a namespace kept alive by a stray
        // reference holds nothing of docker's.
        let in_ns = |args: &[&str]| {
            let _ = Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", self.ns))
                .arg("--")
                .args(args)
                .output();
        };
        in_ns(&["ip", "link", "del", "docker0"]);
        in_ns(&["iptables", "-t", "nat", "-F"]);
        in_ns(&["iptables", "-t", "nat", "-X"]);
        in_ns(&["iptables", "-t", "filter", "-F"]);
        in_ns(&["iptables", "-t", "filter", "-X"]);
        in_ns(&["iptables", "-P", "FORWARD", "ACCEPT"]);
        in_ns(&[
            "sysctl",
            "-qw",
            &format!("net.ipv4.ip_forward={}", self.ns_ip_forward),
        ]);
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
        // Overlay mounts live in dockerd's private mount namespace; any
        // that escaped (none expected) would block removing the directory.
        let prefix = self.dir.path().to_string_lossy().into_owned();
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let mut ours: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| m.starts_with(&prefix))
            .collect();
        ours.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in ours {
            let _ = Command::new("umount").args(["-l", m]).output();
        }
        let now = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default();
        if now != self.host_ip_forward && !std::thread::panicking() {
            panic!(
                "the host's net.ipv4.ip_forward changed ({} -> {}): dockerd escaped its namespace",
                self.host_ip_forward.trim(),
                now.trim()
            );
        }
    }
}
