// Package fs stands in for github.com/containerd/stargz-snapshotter/fs (see the
// stand-in snapshot package): the stargz snapshotter is switched off.
package fs

import (
	"github.com/containerd/stargz-snapshotter/fs/config"
	"github.com/containerd/stargz-snapshotter/fs/layer"
	"github.com/containerd/stargz-snapshotter/fs/source"
	"github.com/containerd/stargz-snapshotter/snapshot"
	"github.com/sirupsen/logrus"
)

// Option configures the filesystem.
type Option func()

func WithGetSources(source.GetSources) Option               { return func() {} }
func WithMetricsLogLevel(logrus.Level) Option               { return func() {} }
func WithOverlayOpaqueType(layer.OverlayOpaqueType) Option { return func() {} }

// NewFilesystem always fails.
func NewFilesystem(root string, cfg config.Config, opts ...Option) (snapshot.FileSystem, error) {
	return nil, snapshot.ErrOff
}
