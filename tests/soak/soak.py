#!/usr/bin/env python3
"""credd's soak test: kill -9 the daemon and the file-writing commands at random.

Not part of the timed suite (`cargo xtask test`); run it by hand or in a nightly job:

    tests/soak/soak.sh --seconds 120

For --seconds, in a throwaway HOME (moto as STS, as in the end-to-end tests),
worker threads run `credd write-credentials`, `credd profiles link`,
`credd token issue` (to stdout and with --file) and `credd token revoke VALUE`
over and over, and SIGKILL a share of them at a random moment; a chaos thread
SIGKILLs the daemon every few seconds and starts it again. A command counts as
acknowledged when it exited 0 (with its "wrote"/"revoked" message). Then it checks:

- ~/.aws/credentials and ~/.aws/config parse (botocore's own parser and
  configparser), after every acknowledged write and at the end;
- every acknowledged section / linked profile is there, and the user's own
  section is unchanged;
- no temporary copy (`.*.credd-tmp-*`, `.credentials-credd-*`) is left after
  the next write;
- STATE_DIR/tokens.json parses as JSON;
- every acknowledged token is accepted by the endpoint, every acknowledged
  revocation is refused (401), every acknowledged token file holds its token, 0600.

Exit status 0 when every check held, 1 otherwise (each violation is printed).
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CONFIG = """[profile base]
aws_access_key_id = AKIAIOSFODNN7EXAMPLE
aws_secret_access_key = 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
region = us-east-1

[profile dev]
role_arn = arn:aws:iam::123456789012:role/dev
source_profile = base
region = eu-west-1
"""
USER_CREDENTIALS = "# the user's own\n[default]\naws_access_key_id = AKIAUSEROWN\naws_secret_access_key = userSECRET\n"
TEMP_NAME = re.compile(r"^\..*\.credd-tmp-|^\.credentials-credd-")


class Soak:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.rng_lock = threading.Lock()
        self.dir = Path(tempfile.mkdtemp(prefix="credd-soak-"))
        self.home = self.dir / "home"
        (self.home / ".aws").mkdir(parents=True)
        (self.home / ".aws/config").write_text(CONFIG)
        creds = self.home / ".aws/credentials"
        creds.write_text(USER_CREDENTIALS)
        creds.chmod(0o600)
        (self.dir / "credd.toml").write_text("# defaults\n")
        (self.dir / "tokfiles").mkdir()
        self.credd = args.credd
        self.moto = subprocess.Popen(
            [args.python, str(REPO / "tests/clients/moto_counting.py"), "0", "--exit-with-stdin"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.moto.stdout.readline().strip()
        if not line.startswith("READY "):
            raise SystemExit(f"moto did not start: {line!r}")
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.home),
            "CREDD_RUNTIME_DIR": str(self.dir / "run"),
            "CREDD_STATE_DIR": str(self.dir / "state"),
            "CREDD_CONFIG": str(self.dir / "credd.toml"),
            "AWS_ENDPOINT_URL_STS": line[len("READY "):],
            "LANG": "C.UTF-8",
        }
        self.daemon = None
        self.daemon_lock = threading.Lock()
        self.ledger_lock = threading.Lock()
        self.sections: set[str] = set()
        self.links: set[str] = set()
        self.tokens: set[str] = set()  # acknowledged, not (attempted to be) revoked
        self.revoked: set[str] = set()  # acknowledged revocations
        self.token_files: dict[str, str] = {}
        self.counter = 0
        self.stats: dict[str, int] = {}
        self.violations: list[str] = []

    # -- helpers -------------------------------------------------------------

    def rand(self):
        with self.rng_lock:
            return self.rng.random()

    def next_id(self) -> int:
        with self.ledger_lock:
            self.counter += 1
            return self.counter

    def count(self, key: str):
        with self.ledger_lock:
            self.stats[key] = self.stats.get(key, 0) + 1

    def violation(self, what: str):
        with self.ledger_lock:
            self.violations.append(what)
        print(f"VIOLATION: {what}", file=sys.stderr, flush=True)

    def run(self, args, may_kill=True):
        """Runs credd ARGS; SIGKILLs it at a random moment with probability
        --kill-share. Returns (acknowledged, stdout, stderr, killed)."""
        p = subprocess.Popen(
            [self.credd, *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        killed = False
        if may_kill and self.rand() < self.args.kill_share:
            time.sleep(self.rand() * 0.25)
            if p.poll() is None:
                p.kill()
                killed = True
        out, err = p.communicate()
        if killed and p.returncode == 0:
            killed = False  # it finished first: its answer counts
        return p.returncode == 0 and not killed, out, err, killed

    # -- the daemon ----------------------------------------------------------

    def start_daemon(self):
        with self.daemon_lock:
            if self.daemon is not None and self.daemon.poll() is None:
                return
            log = open(self.dir / "serve.log", "a")
            self.daemon = subprocess.Popen(
                [self.credd, "serve", "--listen", "127.0.0.1:0"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.time() + 30
        while time.time() < deadline:
            o = subprocess.run([self.credd, "status", "--json"], env=self.env, capture_output=True, text=True)
            if o.returncode == 0:
                return json.loads(o.stdout)["daemon"]["container_url"]
            if self.daemon.poll() is not None:
                break
            time.sleep(0.05)
        self.violation(f"the daemon did not start again (exit {self.daemon.poll()}); see {self.dir}/serve.log")
        return None

    def kill_daemon(self):
        with self.daemon_lock:
            if self.daemon is not None and self.daemon.poll() is None:
                self.daemon.kill()
                self.daemon.wait()

    def chaos(self, deadline):
        while time.time() < deadline:
            time.sleep(1 + self.rand() * 4)
            self.kill_daemon()
            self.count("daemon SIGKILL")
            time.sleep(self.rand() * 0.5)
            self.start_daemon()

    # -- the operations ------------------------------------------------------

    def parse_aws_files(self, when: str):
        import botocore.configloader

        for name in ("credentials", "config"):
            path = self.home / ".aws" / name
            try:
                botocore.configloader.raw_config_parse(str(path))
                configparser.ConfigParser(interpolation=None).read_string(path.read_text())
            except Exception as e:  # noqa: BLE001 - any failure to parse is the finding
                self.violation(f"{when}: ~/.aws/{name} does not parse: {e}")

    def op_write_credentials(self):
        name = f"soak-{self.next_id()}"
        ok, _, err, killed = self.run(["write-credentials", "dev", "--as", name])
        self.count("write-credentials killed" if killed else f"write-credentials {'ok' if ok else 'failed'}")
        if ok and f"wrote [{name}]" in err:
            with self.ledger_lock:
                self.sections.add(name)
            self.parse_aws_files(f"after write-credentials --as {name}")

    def op_link(self):
        name = f"soak-link-{self.next_id()}"
        ok, _, err, killed = self.run(["profiles", "link", "dev", "--as", name])
        self.count("profiles link killed" if killed else f"profiles link {'ok' if ok else 'failed'}")
        if ok and f"wrote [profile {name}]" in err:
            with self.ledger_lock:
                self.links.add(name)
            self.parse_aws_files(f"after profiles link --as {name}")

    def op_issue(self):
        ok, out, _, killed = self.run(["token", "issue", "--profile", "dev", "--label", "soak"])
        self.count("token issue killed" if killed else f"token issue {'ok' if ok else 'failed'}")
        tok = out.strip()
        if ok and tok.startswith("credd_"):
            with self.ledger_lock:
                self.tokens.add(tok)

    def op_issue_file(self):
        path = self.dir / "tokfiles" / f"t{self.next_id()}"
        ok, _, err, killed = self.run(["token", "issue", "--profile", "dev", "--file", str(path)])
        self.count("token issue --file killed" if killed else f"token issue --file {'ok' if ok else 'failed'}")
        if ok and "written to" in err:
            try:
                value = path.read_text()
            except OSError as e:
                self.violation(f"token issue --file {path} said ok, but: {e}")
                return
            with self.ledger_lock:
                self.token_files[str(path)] = value

    def op_revoke(self):
        with self.ledger_lock:
            # Keep a few live tokens for the final check.
            if len(self.tokens) < 4:
                return
            tok = sorted(self.tokens)[int(self.rand() * len(self.tokens))]
            # Whatever happens next, its state is only known if acknowledged.
            self.tokens.discard(tok)
        ok, _, err, killed = self.run(["token", "revoke", tok])
        self.count("token revoke killed" if killed else f"token revoke {'ok' if ok else 'failed'}")
        secret = tok.rsplit("_", 1)[-1]
        if secret in err:
            self.violation("token revoke printed the token's secret")
        if ok:
            with self.ledger_lock:
                self.revoked.add(tok)

    def worker(self, deadline):
        ops = [
            (self.op_write_credentials, 4),
            (self.op_link, 3),
            (self.op_issue, 2),
            (self.op_issue_file, 1),
            (self.op_revoke, 1),
        ]
        total = sum(w for _, w in ops)
        while time.time() < deadline:
            r = self.rand() * total
            for op, w in ops:
                if r < w:
                    op()
                    break
                r -= w

    # -- the final checks ----------------------------------------------------

    def check(self):
        url = self.start_daemon()
        # One more write of each file: a temporary copy left by a killed
        # writer must be gone after the next run.
        for args, label in (
            (["write-credentials", "dev", "--as", "soak-final"], "soak-final"),
            (["profiles", "link", "dev", "--as", "soak-final-link"], None),
        ):
            ok, _, err, _ = self.run(args, may_kill=False)
            if not ok:
                self.violation(f"final `credd {' '.join(args)}` failed: {err.strip()}")
            elif label:
                self.sections.add(label)
        self.parse_aws_files("at the end")
        creds = configparser.ConfigParser(interpolation=None)
        creds.read(self.home / ".aws/credentials")
        config = configparser.ConfigParser(interpolation=None)
        config.read(self.home / ".aws/config")
        if not (self.home / ".aws/credentials").read_text().startswith(USER_CREDENTIALS):
            self.violation("the user's own [default] section in ~/.aws/credentials changed")
        for s in sorted(self.sections - set(creds.sections())):
            self.violation(f"[{s}] was acknowledged by write-credentials but is not in ~/.aws/credentials")
        for s in sorted(self.links):
            if f"profile {s}" not in config.sections():
                self.violation(f"[profile {s}] was acknowledged by profiles link but is not in ~/.aws/config")
        for n in os.listdir(self.home / ".aws"):
            if TEMP_NAME.search(n):
                self.violation(f"a temporary copy is left in ~/.aws: {n}")
        tokens_json = self.dir / "state/tokens.json"
        if tokens_json.exists():
            try:
                json.loads(tokens_json.read_text())
            except ValueError as e:
                self.violation(f"tokens.json does not parse: {e}")
        if url is None:
            return

        def status(tok):
            req = urllib.request.Request(f"{url}/dev", headers={"Authorization": tok})
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    return r.status
            except urllib.error.HTTPError as e:
                return e.code

        for tok in sorted(self.tokens):
            st = status(tok)
            if st in (401, 403):
                self.violation(f"token {tok.split('_')[1]} was acknowledged by token issue but is refused ({st})")
        for tok in sorted(self.revoked):
            st = status(tok)
            if st != 401:
                self.violation(f"token {tok.split('_')[1]} was acknowledged as revoked but answers {st}")
        for path, value in sorted(self.token_files.items()):
            p = Path(path)
            if not p.exists() or p.read_text() != value or (p.stat().st_mode & 0o777) != 0o600:
                self.violation(f"token file {path} acknowledged but missing, changed or not 0600")
            elif status(value) in (401, 403):
                self.violation(f"the token in {path} (acknowledged) is refused")

    def main(self):
        print(f"soak: {self.args.seconds} s in {self.dir} (seed {self.args.seed})", flush=True)
        if self.start_daemon() is None:
            return 1
        deadline = time.time() + self.args.seconds
        threads = [threading.Thread(target=self.chaos, args=(deadline,), daemon=True)]
        threads += [
            threading.Thread(target=self.worker, args=(deadline,), daemon=True) for _ in range(self.args.workers)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.check()
        self.kill_daemon()
        self.moto.stdin.close()
        self.moto.wait(timeout=10)
        for k in sorted(self.stats):
            print(f"  {k}: {self.stats[k]}")
        print(
            f"  acknowledged: {len(self.sections)} sections, {len(self.links)} links, "
            f"{len(self.tokens)} live tokens, {len(self.revoked)} revocations, {len(self.token_files)} token files"
        )
        if self.violations:
            print(f"soak: FAILED, {len(self.violations)} violations (files kept in {self.dir})")
            return 1
        print("soak: ok, every file parses and every acknowledged write is there")
        if not self.args.keep:
            subprocess.run(["rm", "-rf", str(self.dir)])
        return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=180, help="how long to run (default 180)")
    ap.add_argument("--workers", type=int, default=4, help="parallel command runners (default 4)")
    ap.add_argument("--kill-share", type=float, default=0.3, help="share of commands SIGKILLed (default 0.3)")
    ap.add_argument("--seed", type=int, default=int(time.time()), help="random seed (printed)")
    ap.add_argument("--credd", default=os.environ.get("CREDD_BIN", str(REPO / "target/debug/credd")))
    ap.add_argument("--python", default=os.environ.get("CREDD_TEST_PYTHON", sys.executable))
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(Soak(args).main())


if __name__ == "__main__":
    main()
