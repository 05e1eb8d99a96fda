// Package fuseoverlayfs stands in for github.com/containerd/fuse-overlayfs-snapshotter/v2,
// which Debian does not package: BuildKit's buildkitd imports it for the
// "fuse-overlayfs" snapshotter. This stand-in switches that snapshotter off
// (overlayfs and native stay). Used only by scripts/chain/buildkit-compile-sid.
package fuseoverlayfs

import (
	"errors"

	"github.com/containerd/containerd/v2/core/snapshots"
)

var errOff = errors.New("fuse-overlayfs snapshotter not built into this buildkitd (mbx local chain)")

// Supported always says no, so "auto" falls back to native.
func Supported(root string) error { return errOff }

// NewSnapshotter always fails.
func NewSnapshotter(root string, opts ...any) (snapshots.Snapshotter, error) { return nil, errOff }
