// Package config stands in for github.com/containerd/stargz-snapshotter/fs/config
// (see the stand-in snapshot package).
package config

// Config takes no settings: the stargz snapshotter is switched off.
type Config struct{}
