#!/bin/bash
# A state directory or webroot that somebody else could have prepared is
# refused, with a sentence saying what to fix, before anything is written
# in it (exit 5, or the challenge's failure for --webroot):
#  - acmectl.lock planted as a symbolic link (or a hard link) to a victim
#    file: the victim keeps its content (root's acmectl used to truncate
#    and overwrite it);
#  - a state directory writable by group/others, or below a directory that
#    is (a sticky one like /tmp is fine), or owned by another uid (root
#    only: chown to 65534);
#  - a .well-known or acme-challenge planted as a link under --webroot:
#    nothing is created or removed where it points.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

mkdir -p "$STATE"
chmod 700 "$STATE"
printf 'precious\n' >"$T/victim"

# --- acmectl.lock as a link -------------------------------------------------
ln -s "$T/victim" "$STATE/acmectl.lock"
expect_status 5 "$T/locklink" account show
grep -q "refusing the lock file $STATE/acmectl.lock: it is a symbolic link.*: remove it" "$T/locklink.stderr" ||
    fail "a planted lock link is not explained: $(cat "$T/locklink.stderr")"
[ "$(cat "$T/victim")" = precious ] || fail "the victim behind acmectl.lock was changed: $(cat "$T/victim")"
rm "$STATE/acmectl.lock"
ln "$T/victim" "$STATE/acmectl.lock"
expect_status 5 "$T/lockhard" account show
grep -q "refusing the lock file $STATE/acmectl.lock: it has 2 hard links.*: remove it" "$T/lockhard.stderr" ||
    fail "a planted hard link is not explained: $(cat "$T/lockhard.stderr")"
[ "$(cat "$T/victim")" = precious ] || fail "the victim hard-linked as acmectl.lock was changed"
rm "$STATE/acmectl.lock"
pass "a planted acmectl.lock link (symbolic or hard) is refused, the victim is intact"

# --- modes ----------------------------------------------------------------------
chmod 0777 "$STATE"
expect_status 5 "$T/ww" account show
grep -q "state directory $STATE is writable by group/others (mode 0777): chmod go-w $STATE" "$T/ww.stderr" ||
    fail "a world-writable state directory is not explained: $(cat "$T/ww.stderr")"
[ ! -e "$STATE/acmectl.lock" ] || fail "acmectl created its lock file in a world-writable state directory"
chmod 1777 "$STATE" # sticky is fine for /tmp, not for the state directory itself
expect_status 5 "$T/sticky" account show
grep -q "is writable by group/others (mode 1777)" "$T/sticky.stderr" || fail "a sticky world-writable state dir was accepted"
chmod 0700 "$STATE"

mkdir "$T/shared"
chmod 0777 "$T/shared"
expect_status 5 "$T/parent" --state-dir "$T/shared/state" account show
grep -q "state directory $T/shared/state: the directory $T/shared above it is writable by group/others (mode 0777).*chmod go-w $T/shared" "$T/parent.stderr" ||
    fail "a world-writable parent is not explained: $(cat "$T/parent.stderr")"
[ ! -e "$T/shared/state/acmectl.lock" ] || fail "acmectl wrote below a world-writable parent"
chmod 1777 "$T/shared"
# No account yet (exit 2) means the state directory itself was accepted.
expect_status 2 "$T/stickyparent" --state-dir "$T/shared/state" account show
grep -q "state directory" "$T/stickyparent.stderr" && fail "a sticky parent (like /tmp) was refused: $(cat "$T/stickyparent.stderr")"
pass "group/other-writable state directories and parents are refused; a sticky parent is fine"

if [ "$(id -u)" = 0 ]; then
    chown 65534:65534 "$STATE"
    expect_status 5 "$T/owner" account show
    grep -q "state directory $STATE is owned by uid 65534, not you (uid 0): chown 0 $STATE" "$T/owner.stderr" ||
        fail "a state directory of another uid is not explained: $(cat "$T/owner.stderr")"
    [ ! -e "$STATE/acmectl.lock" ] || fail "acmectl created its lock file in another uid's state directory"
    chown 0:0 "$STATE"
    pass "a state directory owned by another uid is refused"
else
    say "not root: the chown-to-another-uid case is skipped (CI runs it as root)"
fi

# --- --webroot ------------------------------------------------------------------
# Nothing serves the webroot here: the point is what acmectl writes, and
# each refusal comes before a file would be served.
mkdir -p "$T/www" "$T/elsewhere"
ln -s "$T/elsewhere" "$T/www/.well-known"
rc=0
actl --challenge http-01 --webroot "$T/www" --agree-tos issue wk.example.com >"$T/wk.stdout" 2>"$T/wk.stderr" || rc=$?
[ "$rc" != 0 ] || fail "issue through a planted .well-known link succeeded"
grep -q "refusing $T/www/.well-known: it is a symbolic link" "$T/wk.stderr" ||
    fail "a planted .well-known link is not explained: $(cat "$T/wk.stderr")"
[ -z "$(ls -A "$T/elsewhere")" ] || fail "acmectl wrote where .well-known pointed: $(ls -lA "$T/elsewhere")"
say "planted .well-known: exit $rc"
rm "$T/www/.well-known"
mkdir "$T/www/.well-known"
ln -s "$T/elsewhere" "$T/www/.well-known/acme-challenge"
rc=0
actl --challenge http-01 --webroot "$T/www" issue ac.example.com >"$T/ac.stdout" 2>"$T/ac.stderr" || rc=$?
[ "$rc" != 0 ] || fail "issue through a planted acme-challenge link succeeded"
grep -q "refusing $T/www/.well-known/acme-challenge: it is a symbolic link" "$T/ac.stderr" ||
    fail "a planted acme-challenge link is not explained: $(cat "$T/ac.stderr")"
[ -z "$(ls -A "$T/elsewhere")" ] || fail "acmectl wrote where acme-challenge pointed: $(ls -lA "$T/elsewhere")"
[ -L "$T/www/.well-known/acme-challenge" ] || fail "the planted link was removed or replaced"
pass "planted .well-known / acme-challenge links under --webroot are refused, nothing written through them"

echo "statedir_hostile: PASS"
