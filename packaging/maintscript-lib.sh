# Shared body of the maintainer scripts of picket-agent and picket-backend (.deb and .rpm).
# packaging/build-packages inlines this file after setting:
#   PICKET_PKG   package name (picket-agent | picket-backend)
#   PICKET_UNIT  systemd unit (picket-agent.service | picket-backend.service)
#   PICKET_CONF  configuration file (/etc/picket/agent.yml | /etc/picket/backend.yml)
#   PICKET_DIRS  the package's own state and cache directories, owned by picket
# Services are never started on install unless PICKET_START_SERVICES=1 is in the
# environment of the installing command (see packaging/README.md).

picket_add_user() {
    getent group picket >/dev/null || groupadd --system picket
    getent passwd picket >/dev/null ||
        useradd --system --gid picket --home-dir /var/lib/picket --no-create-home \
            --shell /usr/sbin/nologin --comment "Picket monitoring" picket
}

picket_make_dirs() {
    install -d -m 0755 -o root -g root /etc/picket /var/lib/picket /var/cache/picket
    for d in $PICKET_DIRS; do
        install -d -m 0750 -o picket -g picket "$d"
    done
}

# First installation only: the configuration may hold passwords, so it is readable by the
# service's group but not by everyone. Later upgrades keep whatever the administrator chose.
picket_protect_config() {
    if [ -f "$PICKET_CONF" ]; then
        chgrp picket "$PICKET_CONF"
        chmod 0640 "$PICKET_CONF"
    fi
}

picket_systemd_running() {
    [ -d /run/systemd/system ]
}

# $1: "install" (first installation) or "upgrade".
picket_services_after_install() {
    if picket_systemd_running; then
        systemctl daemon-reload || true
    fi
    if [ "$1" = install ]; then
        if [ "${PICKET_START_SERVICES:-0}" = 1 ]; then
            if picket_systemd_running; then
                systemctl enable --now "$PICKET_UNIT"
            else
                systemctl enable "$PICKET_UNIT" || true
            fi
        else
            echo "$PICKET_PKG: not enabled nor started; run: systemctl enable --now $PICKET_UNIT"
        fi
    elif picket_systemd_running; then
        # An upgrade restarts the service only when it was running.
        systemctl try-restart "$PICKET_UNIT" || true
    fi
}

picket_services_before_remove() {
    if picket_systemd_running; then
        systemctl disable --now "$PICKET_UNIT" || true
    else
        rm -f "/etc/systemd/system/multi-user.target.wants/$PICKET_UNIT"
    fi
}

picket_services_after_remove() {
    if picket_systemd_running; then
        systemctl daemon-reload || true
    fi
}

# Purge: the package's own state and cache, the shared directories once empty, and the
# picket user once no directory of any Picket package is left (no file it owns remains).
picket_purge() {
    for d in $PICKET_DIRS; do
        rm -rf "$d"
    done
    rm -f "$PICKET_CONF.dpkg-old" "$PICKET_CONF.dpkg-new" "$PICKET_CONF.dpkg-dist"
    for d in /var/lib/picket /var/cache/picket /etc/picket; do
        [ -d "$d" ] && rmdir --ignore-fail-on-non-empty "$d"
    done
    if [ ! -e /var/lib/picket ] && [ ! -e /var/cache/picket ] &&
        getent passwd picket >/dev/null; then
        userdel picket || true
        getent group picket >/dev/null && groupdel picket || true
    fi
}
