// Package layer stands in for github.com/containerd/stargz-snapshotter/fs/layer
// (see the stand-in snapshot package).
package layer

// OverlayOpaqueType names the xattr overlayfs opaque directories use.
type OverlayOpaqueType int

const (
	OverlayOpaqueTrusted OverlayOpaqueType = iota
	OverlayOpaqueUser
)
