// Package snapshot stands in for github.com/containerd/stargz-snapshotter/snapshot:
// Debian's stargz-snapshotter (0.14.3) targets containerd's v1 API and breaks
// buildkitd's main_oci_worker.go, so the "stargz" snapshotter is switched off.
// Used only by scripts/chain/buildkit-compile-sid.
package snapshot

import (
	"context"
	"errors"

	"github.com/containerd/containerd/v2/core/snapshots"
)

// ErrOff is what every stargz entry point returns.
var ErrOff = errors.New("stargz snapshotter not built into this buildkitd (mbx local chain)")

// FileSystem is the remote filesystem the snapshotter mounts.
type FileSystem interface{}

// Opt configures the snapshotter.
type Opt func() error

// AsynchronousRemove and NoRestore are accepted and ignored.
var (
	AsynchronousRemove Opt = func() error { return nil }
	NoRestore          Opt = func() error { return nil }
)

// NewSnapshotter always fails.
func NewSnapshotter(ctx context.Context, root string, fs FileSystem, opts ...Opt) (snapshots.Snapshotter, error) {
	return nil, ErrOff
}
