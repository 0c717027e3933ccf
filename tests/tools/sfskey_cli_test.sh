#!/usr/bin/env bash
# End-to-end test of the sfskey command as a user runs it. Starts no servers.
# Usage: sfskey_cli_test.sh PATH_TO_SFSKEY
set -u
SFSKEY=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0
check() {  # description, then a command that must succeed
  local what=$1; shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fails=$((fails + 1)); fi
}
must_fail() {  # description, expected stderr fragment, command...
  local what=$1 frag=$2; shift 2
  local err
  if err=$("$@" 2>&1 >/dev/null); then
    echo "FAIL $what (exit 0)"; fails=$((fails + 1)); return
  fi
  if grep -qF -- "$frag" <<<"$err"; then echo "ok   $what"; else
    echo "FAIL $what: stderr was: $err"; fails=$((fails + 1)); fi
}

check "gen --server" "$SFSKEY" gen --server -o "$dir/server.key"
check "server key file is mode 0600" test "$(stat -c %a "$dir/server.key")" = 600
check "gen --user" "$SFSKEY" gen --user -o "$dir/user.key"
check "user key file is mode 0600" test "$(stat -c %a "$dir/user.key")" = 600

out4000=$("$SFSKEY" show "$dir/server.key" --location 127.0.0.1:4000)
out4001=$("$SFSKEY" show "$dir/server.key" --location 127.0.0.1:4001)
name4000=$(sed -n 's/^name //p' <<<"$out4000")
hostid4000=$(sed -n 's/^hostid //p' <<<"$out4000")
hostid4001=$(sed -n 's/^hostid //p' <<<"$out4001")
check "show prints a self-certifying name" grep -Eq '^@127\.0\.0\.1%4000,[a-z2-7]{32}$' <<<"$name4000"
check "the name carries the HOSTID" test "${name4000##*,}" = "$hostid4000"
check "same key at another port has another HOSTID" test "$hostid4000" != "$hostid4001"
check "show is deterministic" test "$out4000" = "$("$SFSKEY" show "$dir/server.key" --location 127.0.0.1:4000)"

check "a second server key has another HOSTID" "$SFSKEY" gen --server -o "$dir/server2.key"
other=$("$SFSKEY" show "$dir/server2.key" --location 127.0.0.1:4000 | sed -n 's/^hostid //p')
check "  (it differs)" test "$other" != "$hostid4000"

must_fail "refuses to overwrite" "refusing to overwrite" "$SFSKEY" gen --user -o "$dir/server.key"
check "  and left the file intact" test "$("$SFSKEY" show "$dir/server.key" --location 127.0.0.1:4000)" = "$out4000"
must_fail "--location on a user key" "server keys only" "$SFSKEY" show "$dir/user.key" --location 127.0.0.1:1
must_fail "bad location" "" "$SFSKEY" show "$dir/server.key" --location "no-port-here"
must_fail "missing file" "" "$SFSKEY" show "$dir/nonexistent.key"
chmod 644 "$dir/user.key"
must_fail "refuses a key file others can read" "chmod 600" "$SFSKEY" show "$dir/user.key"
printf 'garbage\n' > "$dir/bad.key"; chmod 600 "$dir/bad.key"
must_fail "refuses a malformed key file" "" "$SFSKEY" show "$dir/bad.key"
must_fail "no command" "usage" "$SFSKEY"
# A FIFO planted at the path: refused at once (timeout: the old open() hung).
mkfifo -m 600 "$dir/fifo.key"
must_fail "refuses a FIFO without hanging" "not a regular file" timeout 10 "$SFSKEY" show "$dir/fifo.key"
ln -s "$dir/server.key" "$dir/link.key"
must_fail "refuses a symlink" "symbolic link" "$SFSKEY" show "$dir/link.key"

# Revocation certificates: made from the server key, verified against the
# HOSTID alone; an altered one is refused.
check "revoke" "$SFSKEY" revoke --key "$dir/server.key" --location 127.0.0.1:4000 -o "$dir/revoked"
check "  the certificate names the server" grep -qF "name $name4000" "$dir/revoked"
check "check-revocation accepts it" "$SFSKEY" check-revocation "$dir/revoked"
check "  and prints the HOSTID" grep -qF "$hostid4000" <<<"$("$SFSKEY" check-revocation "$dir/revoked")"
sed "s/^name .*/name @127.0.0.1%4001,$hostid4001/" "$dir/revoked" > "$dir/moved"
must_fail "a certificate moved to another name is refused" "bad signature" "$SFSKEY" check-revocation "$dir/moved"
awk '/^signature /{c=substr($2,10,1); $2=substr($2,1,9) (c=="a"?"b":"a") substr($2,11)} {print}' "$dir/revoked" > "$dir/forged"
must_fail "a certificate with an altered signature is refused" "bad signature" "$SFSKEY" check-revocation "$dir/forged"
must_fail "revoke will not overwrite" "refusing to overwrite" "$SFSKEY" revoke --key "$dir/server.key" --location 127.0.0.1:4000 -o "$dir/revoked"
"$SFSKEY" gen --user -o "$dir/user2.key" >/dev/null
must_fail "revoke needs a server key" "user key" "$SFSKEY" revoke --key "$dir/user2.key" --location 127.0.0.1:4000 -o "$dir/r2"

if [ "$fails" -ne 0 ]; then echo "$fails check(s) failed"; exit 1; fi
echo "all sfskey checks passed"
