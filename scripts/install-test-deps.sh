#!/usr/bin/env bash
# Installs what mailferry's tests and comparison benches need, when it is missing:
#   dovecot-imapd  /usr/sbin/dovecot + the imap/imap-login services (real-server tests)
#   openssl        the per-instance test CA of mailferry-testkit's Dovecot launcher
#   isync          mbsync, for the side-by-side comparison benches
#   time           /usr/bin/time: CPU seconds and peak RSS of each tool in the comparison
#   valgrind       callgrind, for the instruction-count regression gate (benches/icount)
#   chromium       headless browser: the HTML report test loads the page and reads its DOM
#   cyrus-common   Cyrus IMAP's master, ctl_cyrusdb and libraries (the second real server)
#   sasl2-bin      saslpasswd2, for the Cyrus test accounts (a per-instance sasldb)
#   cyrus-imapd    only unpacked, into $MAILFERRY_CYRUS_ROOT (default /opt/mailferry-cyrus):
#                  Debian's package conflicts with dovecot-imapd (both provide imap-server),
#                  so it is fetched with `apt-get download` and extracted with `dpkg-deb -x`;
#                  mailferry-testkit's Cyrus launcher runs its imapd from there.
# Idempotent, and quick (no package manager call) when everything is present.
# The tests run their own Dovecot instances (mailferry-testkit::dovecot); the system service is
# neither needed nor left running: its start is denied during the install, and if it runs anyway
# after an install done here, it is stopped and disabled.
set -euo pipefail

missing=()
if [[ ! -x /usr/sbin/dovecot || ! -x /usr/lib/dovecot/imap || ! -x /usr/lib/dovecot/imap-login ]]; then
    missing+=(dovecot-imapd)
fi
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v mbsync >/dev/null 2>&1 || missing+=(isync)
[[ -x /usr/bin/time ]] || missing+=(time)
command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[[ -x /usr/lib/cyrus/bin/master && -x /usr/lib/cyrus/bin/ctl_cyrusdb ]] || missing+=(cyrus-common)
[[ -x /usr/sbin/saslpasswd2 ]] || missing+=(sasl2-bin)
cyrus_root=${MAILFERRY_CYRUS_ROOT:-/opt/mailferry-cyrus}
cyrus_imapd=$cyrus_root/usr/lib/cyrus/bin/imapd

# Unpacks cyrus-imapd (same version as cyrus-common, which it needs) into $cyrus_root.
unpack_cyrus_imapd() {
    local version tmp
    version=$(dpkg-query -W -f='${Version}' cyrus-common)
    tmp=$(mktemp -d)
    # apt-get download writes to the current directory; _apt must be able to write there.
    chmod 777 "$tmp"
    (cd "$tmp" && apt-get download "cyrus-imapd=$version" ||
        { "${sudo[@]}" apt-get update && apt-get download "cyrus-imapd=$version"; })
    "${sudo[@]}" mkdir -p "$cyrus_root"
    "${sudo[@]}" dpkg-deb -x "$tmp"/cyrus-imapd_*.deb "$cyrus_root"
    rm -rf "$tmp"
    if [[ ! -x $cyrus_imapd ]]; then
        echo "install-test-deps: $cyrus_imapd missing after unpacking cyrus-imapd" >&2
        exit 1
    fi
    echo "install-test-deps: cyrus-imapd $version unpacked into $cyrus_root"
}

if [[ ${#missing[@]} -eq 0 ]]; then
    if [[ ! -x $cyrus_imapd ]]; then
        sudo=()
        [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1 && sudo=(sudo)
        unpack_cyrus_imapd
    fi
    echo "install-test-deps: dovecot-imapd, openssl, isync, time, valgrind, chromium," \
        "cyrus-common, sasl2-bin and the unpacked cyrus-imapd are present"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-deps: missing ${missing[*]}; this script installs them on Debian/Ubuntu" >&2
    echo "only (apt-get). Install the equivalent packages (Dovecot 2.3 with IMAP: /usr/sbin/dovecot;" >&2
    echo "openssl; isync/mbsync; GNU time) with your system's package manager and run the tests again." >&2
    exit 1
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo=(sudo)
    else
        echo "install-test-deps: missing ${missing[*]}; not root and no sudo: run as root:" >&2
        echo "  apt-get install -y --no-install-recommends ${missing[*]}" >&2
        exit 1
    fi
fi

# Deny service starts while the packages install (the Debian convention for images and
# containers): the tests never use the system Dovecot. An existing policy is left alone.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# mailferry install-test-deps: no service starts during install\nexit 101\n' |
        "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    own_policy=1
fi
cleanup() {
    if [[ $own_policy -eq 1 ]]; then
        "${sudo[@]}" rm -f "$policy"
    fi
}
trap cleanup EXIT

install() {
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${missing[@]}"
}
echo "install-test-deps: installing ${missing[*]}"
if ! install; then
    # The package lists may be missing or stale: refresh them only now.
    "${sudo[@]}" apt-get update
    install
fi

# If the system service got started anyway (a policy we did not write, or systemd), stop it.
if [[ " ${missing[*]} " == *" dovecot-imapd "* ]]; then
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
        "${sudo[@]}" systemctl disable --now dovecot.service dovecot.socket >/dev/null 2>&1 || true
    elif [[ -s /run/dovecot/master.pid ]] && command -v invoke-rc.d >/dev/null 2>&1; then
        "${sudo[@]}" invoke-rc.d dovecot stop >/dev/null 2>&1 || true
    fi
fi
# Likewise the system Cyrus (cyrus-common ships its service; the tests run their own).
if [[ " ${missing[*]} " == *" cyrus-common "* ]]; then
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
        "${sudo[@]}" systemctl disable --now cyrus-imapd.service >/dev/null 2>&1 || true
    elif command -v invoke-rc.d >/dev/null 2>&1; then
        "${sudo[@]}" invoke-rc.d cyrus-imapd stop >/dev/null 2>&1 || true
    fi
fi
[[ -x $cyrus_imapd ]] || unpack_cyrus_imapd

for tool in /usr/sbin/dovecot openssl mbsync /usr/bin/time chromium /usr/lib/cyrus/bin/master \
    /usr/sbin/saslpasswd2 "$cyrus_imapd"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "install-test-deps: $tool still missing after the install" >&2
        exit 1
    fi
done
echo "install-test-deps: done"
