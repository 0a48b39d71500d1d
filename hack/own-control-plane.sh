# shellcheck shell=bash
# Sourced by scripts that need a control plane of their own: makes a temp
# dir ($state), points hack/control-plane.sh at it (CONTROL_PLANE_DIR), and
# on exit stops that control plane and removes the dir, whatever the outcome.
# Expects the repository's top directory as the working directory; $1 names
# the temp dir.
state=$(mktemp -d "${TMPDIR:-/tmp}/celers-kube-lease-$1.XXXXXX")
export CONTROL_PLANE_DIR="$state/cp"
cleanup_control_plane() {
  hack/control-plane.sh down >/dev/null 2>&1 || true
  rm -rf "$state"
}
trap cleanup_control_plane EXIT
