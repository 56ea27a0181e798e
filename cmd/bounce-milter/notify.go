package main

import (
	"log/slog"

	"github.com/coreos/go-systemd/v22/daemon"
)

// systemd Type=notify: READY=1 only once every listener is up, RELOADING=1
// around a reload, STOPPING=1 when shutting down. Outside systemd these do
// nothing.

func notifyReady(log *slog.Logger) {
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Warn("systemd notify", "err", err)
	}
}

func notifyReloading() { _, _ = daemon.SdNotify(false, daemon.SdNotifyReloading) }

func notifyStopping() { _, _ = daemon.SdNotify(false, daemon.SdNotifyStopping) }
