// The pod sandbox ("pause") binary of hack/node.sh: made here instead of
// pulled from an image registry. Standard library only.
module celers-kube-lease/hack/node/pause

go 1.26.0
