#!/usr/bin/env bash
# Builds the peers that `credd-bench --peers` compares credd with, pinned, outside
# the repository: sources, Go caches and binaries all live under target/peers/
# (so they go away with the worktree, and nothing of theirs is ever committed).
#
# Each peer is built from the Go module proxy with `go install module@version`
# when the proxy serves it. When the proxy answers 403 ("not available"), the
# pinned commit is taken from a bare git mirror (MIRROR_DIR/<owner>+<name>/repo,
# e.g. brought by the project's search tool `fetch`) with `git archive`, and
# built in place with `go build` (its dependencies still come from the proxy).
#
# A peer with a patch beside this script (bench/peers/NAME.patch) is always
# built from its mirror with the patch applied (`patch -p1`), in a source
# directory of its own (NAME-COMMIT-patched). Only aws-sso has one: its
# production build builds its SSO and SSO OIDC clients without reading the
# SDK's endpoint variables, so the patch makes it read AWS_ENDPOINT_URL_SSO
# and AWS_ENDPOINT_URL_SSO_OIDC (as LoadDefaultConfig would) and nothing else.
#
# Usage: bench/peers/setup.sh            (from the workspace root)
# Env:   PEERS_DIR (default target/peers), MIRROR_DIR (default /work/.mirror)
# Prints one line per peer: "built NAME PATH" or "FAILED NAME (see LOG)".
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
peers=${PEERS_DIR:-$root/target/peers}
mirror=${MIRROR_DIR:-/work/.mirror}
mkdir -p "$peers/bin" "$peers/src" "$peers/log"
export GOPATH="$peers/gopath" GOMODCACHE="$peers/gomod" GOCACHE="$peers/gocache"
export GOBIN="$peers/bin" GOFLAGS=-modcacherw GOTOOLCHAIN=local

# name | module@version for the proxy | mirror dir | pinned commit | package to build
#   | dependencies the proxy refuses, as module=mirrordir@commit (space-separated),
#     archived beside the source and wired in with `go mod edit -replace`
PINS=(
  "aws-vault|github.com/byteness/aws-vault/v7@v7.13.5|ByteNess+aws-vault|943d12bd820453631cbdda819b24cedb15bed71d|.|github.com/byteness/keyring=ByteNess+keyring@17672f44fc81db7de6b990655d8714d0e7ed9dbf"
  "aws-sso|github.com/synfinatic/aws-sso-cli/cmd/aws-sso@v2.3.2|synfinatic+aws-sso-cli|b332ce5591f3c782755569d176d476fc0fe469cc|./cmd/aws-sso"
  "granted|github.com/common-fate/granted/cmd/granted@v0.38.0|common-fate+granted|e1f1b5ab75424d4534ac715c33d6d1049936e3ba|./cmd/granted"
  "amazon-ecs-local-container-endpoints|github.com/awslabs/amazon-ecs-local-container-endpoints@v1.4.2|awslabs+amazon-ecs-local-container-endpoints|48d5b451fd450455bd29f3b4262ec4c1623f1f3d|."
  "rolesanywhere-credential-helper|github.com/aws/rolesanywhere-credential-helper@v1.4.0|aws+rolesanywhere-credential-helper|-|."
)

for pin in "${PINS[@]}"; do
  IFS='|' read -r name modver mdir commit pkg deps <<<"$pin"
  log="$peers/log/$name.log"
  : >"$log"
  if [ -x "$peers/bin/$name" ]; then echo "built $name $peers/bin/$name"; continue; fi
  patchfile="$root/bench/peers/$name.patch"
  [ -f "$patchfile" ] || patchfile=
  if [ -z "$patchfile" ] && go install "$modver" >>"$log" 2>&1 && [ -x "$peers/bin/$name" ]; then
    echo "built $name $peers/bin/$name (proxy: $modver)"; continue
  fi
  if [ "$commit" = - ] || [ ! -d "$mirror/$mdir/repo" ]; then
    echo "FAILED $name: proxy refused and no mirror at $mirror/$mdir (see $log)"; continue
  fi
  src="$peers/src/$name-$commit${patchfile:+-patched}"
  if [ ! -d "$src" ]; then
    rm -rf "$src.tmp"
    mkdir -p "$src.tmp" && git --git-dir="$mirror/$mdir/repo" archive "$commit" | tar -x -C "$src.tmp" \
      && { [ -z "$patchfile" ] || (cd "$src.tmp" && patch -p1 <"$patchfile") >>"$log" 2>&1; } \
      && mv "$src.tmp" "$src"
  fi
  for dep in ${deps:-}; do
    dmod=${dep%%=*}; drest=${dep#*=}; ddir=${drest%@*}; dcommit=${drest##*@}
    dsrc="$peers/src/$ddir-$dcommit"
    if [ ! -d "$dsrc" ]; then
      mkdir -p "$dsrc.tmp" && git --git-dir="$mirror/$ddir/repo" archive "$dcommit" | tar -x -C "$dsrc.tmp" && mv "$dsrc.tmp" "$dsrc"
    fi
    (cd "$src" && go mod edit -replace "$dmod=$dsrc") >>"$log" 2>&1
  done
  if [ ! -d "$src" ]; then echo "FAILED $name: cannot unpack or patch its source (see $log)"; continue; fi
  if (cd "$src" && go build -trimpath -o "$peers/bin/$name" "$pkg") >>"$log" 2>&1; then
    echo "built $name $peers/bin/$name (mirror: $mdir@$commit${patchfile:+, patched with $patchfile})"
  else
    echo "FAILED $name (see $log)"; tail -3 "$log" | sed 's/^/    /'
  fi
done
